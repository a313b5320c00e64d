"""Query latency: the real API next to a bare FastAPI endpoint, single-SKU GET and batch-100.

A local redis-server (free port) is filled with ``--skus`` SKU hashes laid out as
``docs/engine.md`` says (3 DCs and 7 stores each, 4 channels, the example rules),
written directly with redis-py (pipelines of per-key commands, key names from
``projection.Keys``). A background thread keeps the flow's heartbeat and
progress fresh and rewrites ``--writes-per-s`` random SKUs a second, as a running
flow would, so the API's read cache sees invalidations during the load. Both servers
run as ``uvicorn`` with one worker, uvloop and httptools, access log off; the API with
its default settings (read cache on) and the rate limit off (one key for all the load).

``--redis`` (default ``both``): ``single`` is that one redis-server (server ``engine``);
``cluster`` is a local Redis Cluster of 3 masters with 1 replica each
(``local_servers.start_redis_cluster``, filled and kept written the same way) read by
its own API process via ``redis+cluster://`` (server ``engine-cluster``); ``both`` runs
the two APIs side by side in every round (their order flipping each round) and reports
requests/s cluster/single, besides each one's ratio to the bare server. The table counts
non-2xx answers (median per run): they are in req/s too. On a cluster the API's client
has a pool of ``AVAIL_REDIS_MAX_CONNECTIONS`` (default 64) per node that answers 503 at
once when used up, where one Redis's pool waits for a connection;
``--redis-max-connections N`` sets it for both engine APIs.

Scenarios, each at every ``--connections`` value (default 32 and 256):

- ``single``: ``GET /v1/availability/{sku}?channel=web``, a random SKU of 5,000;
- ``batch``: ``POST /v1/availability/batch`` with 100 random SKUs and ``channel=web``
  (the bare server reads the body and answers a constant of about the same size);
- ``mixed``: the ``single`` GETs at ``--connections`` while a second wrk keeps
  ``--mixed-batch-connections`` (default 4) batches of 1,000 SKUs in flight: what a big batch
  costs the other requests. The row is the single GETs'; the batches' req/s and p99 are in
  the JSON (``batch1000_rps``, ``batch1000_p99_ms``). The bare server answers its constant to them.

``--scenarios`` picks some of them (default ``single batch``).

Before each measured run of ``single`` and ``batch``, wrk runs ``--warmup-s`` seconds
(default 2) unmeasured against the same server: the engine sat idle while the other servers
ran, so its read cache has expired, and a storefront sees the steady state, not the first
second after a cold start. The warm-up's p99 (the cold start) is reported beside the run
(``warmup_p99_ms``).

Each round runs every scenario on the engine(s), then at once on the bare server; the
``--rounds`` rounds (default 3) alternate like this and the medians are reported via
``load_tests/report.py``: ``api_latency.json`` plus ``api_latency_rps.png`` (req/s, engine(s)
vs bare) and ``api_latency_<scenario>_c<connections>.png`` (p50 and p99 against the target)
in ``load_tests/results/``.

The load generator is ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``). Without root,
build it from source (``git clone https://github.com/wg/wrk && make`` needs only gcc
and make; put the binary on PATH), or run ``--client httpx``: a pure-Python fallback
(asyncio + httpx, one process) that saturates at a few thousand requests a second on
its own, so it measures the ratio less well than wrk does; use it only as a smoke test.

``python -m load_tests.bench_api [--connections 32 256] [--rounds 3] [--seconds 10] [--redis single|cluster|both]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from redis.typing import EncodableT, FieldT

from load_tests import report
from local_servers import (
    LOOPBACK,
    LocalRedisCluster,
    LocalServer,
    free_port,
    start_redis,
    start_redis_cluster,
    stop_process,
)
from projection import Keys, rules_document
from projection.connect import sync_client
from rulebook import load_rules

RULES = Path(__file__).parent.parent / "rules"
KEY = "bench-key-0123456789abcdef"
KEYS = Keys("avail")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
HOT_SKUS = 5000
BATCH = 100
BATCH_BODIES = 300
BIG_BATCH = 1000
BIG_BATCH_BODIES = 30
SCENARIOS = ("single", "batch", "mixed")
TARGET_P99_MS = {"single": 10.0, "batch": 25.0, "mixed": 10.0}
TARGET_RATIO = 0.7
ENGINES = {"single": "engine", "cluster": "engine-cluster"}  # Redis mode -> server name in the results
BASELINE = "engine-baseline"
"""``--baseline-api``: another version of the API package on the single Redis."""


class Fill:
    """Writes SKU hashes the way the flow lays them out (``docs/engine.md``, Redis layout)."""

    def __init__(self, url: str) -> None:
        self.rules = load_rules(RULES)
        self.client = sync_client(url)  # one Redis or a cluster: every pipeline below holds per-key commands
        self.rng = random.Random(7)
        self.dcs = [n.id for n in self.rules.nodes.values() if n.type == "dc"]
        self.stores = [n.id for n in self.rules.nodes.values() if n.type == "store"]
        self.version = 1

    def sku_fields(self, sku: str, now: int) -> dict[FieldT, EncodableT]:
        self.version += 1
        fields: dict[FieldT, EncodableT] = {"v": now * 10 + self.version % 10, "a": now, "r": self.rules.version}
        # The same 7 stores on every rewrite of a SKU: the hash keeps its size, as under the real flow.
        for node in self.dcs + random.Random(sku).sample(self.stores, 7):
            on_hand = self.rng.randint(0, 200)
            fields[f"n:{node}"] = f"{on_hand},0,0,0,1,{max(0, on_hand - 1)}"
        for channel in self.rules.channels:
            fields[f"c:{channel}"] = self.rng.randint(0, 500)
        return fields

    def all(self, skus: int) -> list[str]:
        self.client.set(KEYS.rules, orjson.dumps(rules_document(self.rules)))
        names = [f"SKU-{i:06d}" for i in range(skus)]
        now = time.time_ns() // 1000
        for start in range(0, skus, 1000):
            pipe = self.client.pipeline(transaction=False)
            for sku in names[start:start + 1000]:
                pipe.hset(KEYS.sku(sku), mapping=self.sku_fields(sku, now))
            pipe.zadd(KEYS.skus, dict.fromkeys(names[start:start + 1000], 0))
            pipe.execute()
        self.beat()
        return names

    def beat(self) -> None:
        now = time.time_ns() // 1000
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(KEYS.heartbeat, "bench", now)
        pipe.hset(KEYS.progress, mapping={"applied:bench": now, "event:bench": now - 1000})
        pipe.execute()

    def rewrite(self, skus: Sequence[str]) -> None:
        now = time.time_ns() // 1000
        pipe = self.client.pipeline(transaction=False)
        for sku in skus:
            pipe.hset(KEYS.sku(sku), mapping=self.sku_fields(sku, now))
        pipe.execute()


def keep_writing(fill: Fill, names: Sequence[str], writes_per_s: int, stop: threading.Event) -> None:
    """Heartbeat and progress every second, and ``writes_per_s`` SKU rewrites in 10 slices a second."""
    ticks = 0
    while not stop.wait(0.1):
        ticks += 1
        if writes_per_s:
            fill.rewrite(fill.rng.sample(names[:HOT_SKUS], max(1, writes_per_s // 10)))
        if ticks % 10 == 0:
            fill.beat()


def serve(app: str, port: int, env: dict[str, str], log: Path, factory: bool,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", app, "--host", LOOPBACK, "--port", str(port), "--workers", "1",
               "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
    if factory:
        command.append("--factory")
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)  # noqa: S603
    for _ in range(200):
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/v1/availability/SKU-000001?channel=web",
                         headers={"X-API-Key": KEY}, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"{app} did not come up; see {log}")


def _lua_string(text: str) -> str:
    return "[[" + text + "]]"


def write_scripts(work: Path, names: Sequence[str]) -> dict[str, Path]:
    rng = random.Random(11)
    hot = list(names[:HOT_SKUS])
    paths = ",".join(f'"/v1/availability/{sku}?channel=web"' for sku in hot)
    single = work / "single.lua"
    single.write_text(f'local paths = {{{paths}}}\nwrk.headers["X-API-Key"] = "{KEY}"\n'
                      "request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n")
    bodies = ",".join(
        _lua_string(orjson.dumps({"skus": rng.sample(hot, BATCH), "channel": "web"}).decode())
        for _ in range(BATCH_BODIES)
    )
    batch = work / "batch.lua"
    batch.write_text(
        f'local bodies = {{{bodies}}}\nwrk.headers["X-API-Key"] = "{KEY}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function() return wrk.format('POST', '/v1/availability/batch', nil, "
        "bodies[math.random(#bodies)]) end\n",
    )
    big_bodies = ",".join(
        _lua_string(orjson.dumps({"skus": rng.sample(hot, BIG_BATCH), "channel": "web"}).decode())
        for _ in range(BIG_BATCH_BODIES)
    )
    big = work / "batch1000.lua"
    big.write_text(
        f'local bodies = {{{big_bodies}}}\nwrk.headers["X-API-Key"] = "{KEY}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function() return wrk.format('POST', '/v1/availability/batch', nil, "
        "bodies[math.random(#bodies)]) end\n",
    )
    return {"single": single, "batch": batch, "batch1000": big}


def run_mixed(port: int, scripts: dict[str, Path], connections: int, batch_connections: int,
              seconds: int) -> dict[str, float]:
    """Single GETs (the result) while batches of 1,000 SKUs run next to them, for as long."""
    batches: dict[str, float] = {}

    def big() -> None:
        batches.update(run_wrk(port, scripts["batch1000"], batch_connections, seconds + 1))

    beside = threading.Thread(target=big)
    beside.start()
    time.sleep(0.5)  # the batches are under way first
    result = run_wrk(port, scripts["single"], connections, seconds - 1)
    beside.join()
    return result | {"batch1000_rps": batches["rps"], "batch1000_p99_ms": batches["p99_ms"]}


def run_wrk(port: int, script: Path, connections: int, seconds: int) -> dict[str, float]:
    done = subprocess.run(  # noqa: S603
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",  # noqa: S607
         "-s", str(script), f"http://{LOOPBACK}:{port}"], capture_output=True, text=True, check=True,
    )
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}\n{done.stderr}")
    result = {"rps": float(rps[1])}
    for pct in ("50", "99"):
        found = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\b", out)
        if found is None:
            raise RuntimeError(f"no p{pct} in wrk output:\n{out}")
        result[f"p{pct}_ms"] = float(found[1]) * UNITS[found[2]]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(errors[1]) if errors else 0.0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = float(sum(int(n) for n in socket_errors.groups())) if socket_errors else 0.0
    return result


HttpxCall = tuple[str, str, dict[str, str], bytes | None]
"""Method, path, headers and body of the one request the fallback repeats."""


def run_httpx(port: int, call: HttpxCall, connections: int, seconds: int) -> dict[str, float]:
    """The fallback load generator: ``connections`` asyncio workers, each one request at a time."""

    async def drive() -> tuple[list[float], int]:
        latencies: list[float] = []
        bad = 0
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", limits=limits, timeout=5) as client:
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal bad
                method, path, headers, body = call
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    answer = await client.request(method, path, headers=headers, content=body)
                    latencies.append((time.perf_counter() - started) * 1000)
                    bad += answer.status_code >= 300  # noqa: PLR2004

            await asyncio.gather(*(worker() for _ in range(connections)))
        return latencies, bad

    latencies, bad = asyncio.run(drive())
    return {"rps": len(latencies) / seconds, "p50_ms": report.percentile(latencies, 0.5),
            "p99_ms": report.percentile(latencies, 0.99), "non_2xx": float(bad), "socket_errors": 0.0}


def httpx_call(scenario: str, names: Sequence[str]) -> HttpxCall:
    headers = {"X-API-Key": KEY}
    if scenario == "single":
        return "GET", f"/v1/availability/{names[1]}?channel=web", headers, None
    body = orjson.dumps({"skus": list(names[:BATCH]), "channel": "web"})
    return "POST", "/v1/availability/batch", headers | {"Content-Type": "application/json"}, body


def cache_counters(port: int) -> dict[str, float]:
    text = httpx.get(f"http://{LOOPBACK}:{port}/metrics", headers={"X-API-Key": KEY}, timeout=5).text
    found = re.findall(r'^avail_api_read_cache_total\{outcome="(\w+)"\} ([\d.e+]+)$', text, re.MULTILINE)
    return {outcome: float(value) for outcome, value in found}


def main() -> None:  # noqa: PLR0912, PLR0915 - a script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=["single", "batch"])
    parser.add_argument("--mixed-batch-connections", type=int, default=4,
                        help="mixed: connections sending 1,000-SKU batches beside the single GETs")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-s", type=int, default=2,
                        help="wrk runs this long, unmeasured, before each measured run of single and batch "
                        "(0: none); its p99 is reported as warmup_p99_ms")
    parser.add_argument("--writes-per-s", type=int, default=100, help="SKU rewrites a second during the load")
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk")
    parser.add_argument("--redis", choices=("single", "cluster", "both"), default="both",
                        help="the API on one local Redis, on a local Redis Cluster (3 masters + 3 replicas), or both")
    parser.add_argument("--redis-max-connections", type=int,
                        help="AVAIL_REDIS_MAX_CONNECTIONS of the engine APIs (default: the API's own)")
    parser.add_argument("--baseline-api", type=Path, metavar="DIR",
                        help="also serve DIR/availability_api (a copy of another version of the package) on the "
                        "same Redis, as server engine-baseline, alternating with the others: before/after in one run")
    parser.add_argument("--name", default="api_latency", help="results file name (JSON and PNG prefixes)")
    args = parser.parse_args()
    if args.client == "httpx" and "mixed" in args.scenarios:
        parser.error("the mixed scenario needs wrk")
    baseline = args.baseline_api
    if baseline is not None and (args.redis == "cluster" or not (baseline / "availability_api").is_dir()):
        parser.error("--baseline-api needs --redis single or both, and DIR/availability_api")
    if args.client == "wrk" and shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian/Ubuntu), or build it from source "
                 "(https://github.com/wg/wrk: make, needs gcc), or run with --client httpx (a weaker fallback)")
    modes = ["single", "cluster"] if args.redis == "both" else [args.redis]
    engines = [ENGINES[mode] for mode in modes]
    load_before = os.getloadavg()  # other work on the machine skews both servers: say how busy it was
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    redis_server: LocalServer | None = None
    cluster: LocalRedisCluster | None = None
    processes: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    writers: list[threading.Thread] = []
    try:
        urls: dict[str, str] = {}
        if "single" in modes:
            redis_server = start_redis(log_dir=work)
            urls["single"] = f"redis://{LOOPBACK}:{redis_server.port}/0"
        if "cluster" in modes:
            cluster = start_redis_cluster(masters=3, replicas_per_master=1, work_dir=work / "redis-cluster")
            urls["cluster"] = cluster.url
        names: list[str] = []
        for mode in modes:
            names = Fill(urls[mode]).all(args.skus)
            writer = threading.Thread(target=keep_writing, args=(Fill(urls[mode]), names, args.writes_per_s, stop),
                                      daemon=True)
            writer.start()
            writers.append(writer)
        scripts = write_scripts(work, names)
        ports = {server: free_port() for server in [*engines, "bare", BASELINE]}
        for mode, server in zip(modes, engines, strict=True):
            # One key for all the load, with no rate_per_s: measure the API, not the limiter.
            env = {**os.environ, "AVAIL_REDIS_URL": urls[mode],
                   "AVAIL_API_KEYS": orjson.dumps({KEY: ["read"]}).decode()}
            if args.redis_max_connections is not None:
                env["AVAIL_REDIS_MAX_CONNECTIONS"] = str(args.redis_max_connections)
            processes.append(serve("availability_api.app:app_from_env", ports[server], env, work / f"{server}.log",
                                   True))
            if mode == "single" and args.baseline_api is not None:
                # Run from DIR: its availability_api comes first on sys.path (python -m puts the cwd there).
                processes.append(serve("availability_api.app:app_from_env", ports[BASELINE], env,
                                       work / f"{BASELINE}.log", True, cwd=args.baseline_api.resolve()))
        if args.baseline_api is not None:
            engines.append(BASELINE)
        processes.append(serve("load_tests.bare_api:app", ports["bare"], dict(os.environ), work / "bare.log", False))
        cases = [(s, c) for s in args.scenarios for c in args.connections]
        runs: dict[str, list[dict[str, float]]] = {}
        for round_no in range(1, args.rounds + 1):
            order = engines if round_no % 2 else engines[::-1]  # neither Redis mode always goes first
            for scenario, connections in cases:
                for server in [*order, "bare"]:
                    if args.client == "wrk" and scenario == "mixed":
                        run = run_mixed(ports[server], scripts, connections, args.mixed_batch_connections,
                                        args.seconds)
                    elif args.client == "wrk":
                        warmup = (run_wrk(ports[server], scripts[scenario], connections, args.warmup_s)
                                  if args.warmup_s else None)
                        run = run_wrk(ports[server], scripts[scenario], connections, args.seconds)
                        if warmup is not None:
                            run["warmup_p99_ms"] = warmup["p99_ms"]
                    else:
                        run = run_httpx(ports[server], httpx_call(scenario, names), connections, args.seconds)
                    runs.setdefault(f"{scenario}/c{connections}/{server}", []).append(run)
                    print(f"round {round_no} {scenario:6s} c={connections:<4d} {server:14s} "
                          f"{run['rps']:8,.0f} req/s  p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:7.2f} ms"
                          + (f"  (warm-up p99 {run['warmup_p99_ms']:.1f} ms)" if "warmup_p99_ms" in run else "")
                          + (f"  non-2xx {run['non_2xx']:.0f}" if run["non_2xx"] else "")
                          + (f"  socket errors {run['socket_errors']:.0f}" if run["socket_errors"] else "")
                          + (f"  (1,000-SKU batches beside: {run['batch1000_rps']:,.0f} req/s, "
                             f"p99 {run['batch1000_p99_ms']:.1f} ms)" if "batch1000_rps" in run else ""),
                          flush=True)
        caches = {server: cache_counters(ports[server]) for server in engines}
        medians = {
            case: {f: statistics.median(r[f] for r in case_runs)
                   for f in ("rps", "p50_ms", "p99_ms", "non_2xx", "batch1000_rps", "batch1000_p99_ms", "warmup_p99_ms")
                   if f in case_runs[0]}
            for case, case_runs in runs.items()
        }
        rows: list[list[Any]] = []
        verdicts: dict[str, dict[str, Any]] = {}
        for scenario, connections in cases:
            case = f"{scenario}/c{connections}"
            bare = medians[f"{case}/bare"]
            for server in engines:
                engine = medians[f"{case}/{server}"]
                ratio = engine["rps"] / bare["rps"]
                p99_ok = engine["p99_ms"] <= TARGET_P99_MS[scenario]
                verdict: dict[str, Any] = {"ratio": ratio, "p99_target_ms": TARGET_P99_MS[scenario], "p99_met": p99_ok}
                cluster_ratio = ""
                if server == ENGINES["cluster"] and ENGINES["single"] in engines:
                    single = runs[f"{case}/{ENGINES['single']}"]
                    pairs = [c["rps"] / s["rps"] for c, s in zip(runs[f"{case}/{server}"], single, strict=True)]
                    verdict |= {"cluster_over_single_rps": engine["rps"] / statistics.median(s["rps"] for s in single),
                                "cluster_over_single_rps_per_round": pairs}
                    cluster_ratio = f"{verdict['cluster_over_single_rps']:.2f}"
                verdicts[case if server == "engine" else f"{case}/{server}"] = verdict
                rows.append([scenario, connections, server, engine["rps"], engine["p50_ms"], engine["p99_ms"],
                             int(engine["non_2xx"]), f"{ratio:.2f}", "yes" if p99_ok else "no", cluster_ratio])
            rows.append([scenario, connections, "bare", bare["rps"], bare["p50_ms"], bare["p99_ms"],
                         int(bare["non_2xx"]), "", "", ""])
        read_cache: dict[str, Any] = {}
        for server, cache in caches.items():
            lookups = sum(cache.get(k, 0.0) for k in ("hit", "miss"))
            read_cache[server] = cache | {"hit_rate": cache.get("hit", 0.0) / lookups if lookups else None}
        result = {
            "client": args.client, "seconds": args.seconds, "rounds": args.rounds, "skus": args.skus,
            "hot_skus": HOT_SKUS, "batch_size": BATCH, "writes_per_s": args.writes_per_s, "redis": modes,
            "redis_max_connections": args.redis_max_connections,
            "cluster": {"masters": 3, "replicas_per_master": 1} if cluster is not None else None,
            "targets": {"rps_ratio": TARGET_RATIO, "p99_ms": TARGET_P99_MS},
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "runs": runs, "medians": medians, "verdicts": verdicts,
            # one engine: its counters as before; several: per server
            "read_cache": read_cache[engines[0]] if len(engines) == 1 else read_cache,
        }
        print(f"\nmedians of {args.rounds} alternating rounds of {args.seconds} s ({args.client}); "
              f"read cache: {caches}")
        report.save(args.name, result, ["scenario", "connections", "server", "req/s", "p50 ms", "p99 ms",
                                        "non-2xx", "engine/bare", "p99 target met", "cluster/single req/s"], rows)
        groups = [f"{s} c={c}" for s, c in cases]
        servers = [*engines, "bare"]
        report.bars(f"{args.name}_rps", f"Requests/s, {' vs '.join(servers)} (medians)", groups, {
            server: [medians[f"{s}/c{c}/{server}"]["rps"] for s, c in cases] for server in servers
        }, "requests/s")
        for scenario, connections in cases:  # one plot each: latencies at 256 connections dwarf those at 32
            case = f"{scenario}/c{connections}"
            report.bars(
                f"{args.name}_{scenario}_c{connections}",
                f"{scenario}, {connections} connections: latency (medians of {args.rounds}; target p99 ≤ "
                f"{TARGET_P99_MS[scenario]:g} ms)", ["p50", "p99"], {
                    server: [medians[f"{case}/{server}"]["p50_ms"], medians[f"{case}/{server}"]["p99_ms"]]
                    for server in servers
                }, "ms", target=TARGET_P99_MS[scenario])
    finally:
        stop.set()
        for writer in writers:
            writer.join(5)
        for process in processes:
            stop_process(process)
        if redis_server is not None:
            redis_server.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
