"""Query latency: single-SKU GET on the real API next to a bare FastAPI endpoint, one run.

A local Redis is filled through the flow's own sink with ``--skus`` SKUs (3 DCs and 7
stores each, 4 channels, the example rules). Both servers run as ``uvicorn`` with one
worker, uvloop and httptools, access log off. ``wrk`` (Debian package ``wrk``) drives
``--connections`` connections for ``--seconds`` per run, each request a random SKU
(``?channel=web``), alternating engine and baseline ``--rounds`` times; medians reported.
``python -m load_tests.bench_api [--connections 32] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import redis

from avail.local_servers import LOOPBACK, free_port, start_redis
from avail.projection import Keys, rules_document
from avail.rules_loader import load_rules
from dataflows.messages import Heartbeat, SkuWrite
from dataflows.redis_sink import _RedisSinkPartition

RESULTS = Path(__file__).parent / "results"
RULES = Path(__file__).parent.parent / "rules"
KEY = "bench-key-0123456789abcdef"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def fill(url: str, skus: int) -> list[str]:
    rules = load_rules(RULES)
    client = redis.Redis.from_url(url)
    keys = Keys("avail")
    client.set(keys.rules, orjson.dumps(rules_document(rules)))
    sink = _RedisSinkPartition(client, keys, 1.0)
    rng = random.Random(7)
    dcs = [n for n in rules.nodes.values() if n.type == "dc"]
    stores = [n for n in rules.nodes.values() if n.type == "store"]
    names = [f"SKU-{i:06d}" for i in range(skus)]
    now = time.time_ns() // 1000
    for start in range(0, skus, 1000):
        batch = []
        for sku in names[start:start + 1000]:
            nodes = dcs + rng.sample(stores, 7)
            positions = {n.id: f"{(h := rng.randint(0, 200))},0,0,0,1,{max(0, h - 1)}" for n in nodes}
            channels = {c: rng.randint(0, 500) for c in rules.channels}
            batch.append(SkuWrite(sku, now, True, positions, channels, now, rules.version))
        sink.write_batch([*batch, Heartbeat("bench", now)])
    return names


def serve(app: str, port: int, env: dict[str, str], log: Path, factory: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", app, "--host", LOOPBACK, "--port", str(port), "--workers", "1",
               "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
    if factory:
        command.append("--factory")
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    for _ in range(200):
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/v1/availability/SKU-000001?channel=web",
                         headers={"X-API-Key": KEY}, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{app} did not come up; see {log}")


def wrk(port: int, script: Path, connections: int, seconds: int) -> dict[str, float]:
    done = subprocess.run(  # noqa: S603
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),  # noqa: S607
         f"http://{LOOPBACK}:{port}"], capture_output=True, text=True, check=True,
    )
    out = done.stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        result[f"p{pct}_ms"] = float(value) * UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(errors[1]) if errors else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    redis_server = start_redis(log_dir=work)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        url = f"redis://{LOOPBACK}:{redis_server.port}/0"
        names = fill(url, args.skus)
        script = work / "skus.lua"
        paths = ",".join(f'"/v1/availability/{sku}?channel=web"' for sku in names[:5000])
        script.write_text(f'local paths = {{{paths}}}\nwrk.headers["X-API-Key"] = "{KEY}"\n'
                          "request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n")
        env = {**os.environ, "AVAIL_REDIS_URL": url, "AVAIL_API_KEYS": orjson.dumps({KEY: ["read"]}).decode(),
               "AVAIL_RATE_LIMIT_PER_S": "0"}  # one key for all the load: measure the API, not the limiter
        engine_port, bare_port = free_port(), free_port()
        processes.append(serve("availability_api.app:app_from_env", engine_port, env, work / "api.log", True))
        processes.append(serve("load_tests.bare_api:app", bare_port, env, work / "bare.log", False))
        engine, bare = [], []
        for i in range(args.rounds):
            engine.append(wrk(engine_port, script, args.connections, args.seconds))
            bare.append(wrk(bare_port, script, args.connections, args.seconds))
            print(f"round {i + 1}: engine {engine[-1]}  bare {bare[-1]}")

        def med(runs: list[dict[str, float]], field: str) -> float:
            return statistics.median(r[field] for r in runs)

        result = {
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "connections": args.connections, "seconds": args.seconds, "skus": args.skus,
            "engine": engine, "bare": bare,
            "engine_median": {f: med(engine, f) for f in ("rps", "p50_ms", "p99_ms")},
            "bare_median": {f: med(bare, f) for f in ("rps", "p50_ms", "p99_ms")},
        }
        result["rps_ratio"] = result["engine_median"]["rps"] / result["bare_median"]["rps"]
        print(f"\nsingle-SKU GET, {args.connections} connections, medians of {args.rounds}:")
        for name in ("engine", "bare"):
            m = result[f"{name}_median"]
            print(f"  {name:7s} {m['rps']:8,.0f} req/s   p50 {m['p50_ms']:6.2f} ms   p99 {m['p99_ms']:6.2f} ms")
        print(f"  ratio (engine / bare rps): {result['rps_ratio']:.2f}")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"api_single_c{args.connections}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    finally:
        for process in processes:
            process.kill()
            process.wait()
        redis_server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
