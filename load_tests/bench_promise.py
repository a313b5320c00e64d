"""Promise dates against availability: a 1,000-line promise batch next to a 1,000-SKU availability batch.

The contract's target (section 7): ``POST /v1/availability/promise`` with 1,000 lines answers
with a p99 within 2× of ``POST /v1/availability/batch`` with the same 1,000 SKUs.

Set-up as ``load_tests/bench_api.py``: a local redis-server (or, ``--redis cluster``, a local
Redis Cluster of 3 masters with 1 replica each) filled with ``--skus`` SKU hashes laid out as
the flow writes them (3 DCs and 7 stores each), a background thread keeping the heartbeat
fresh and rewriting ``--writes-per-s`` random SKUs a second (read-cache invalidations), and
one API process (uvicorn, one worker, uvloop, httptools, read cache on, no rate limit).
The rules are the shipped ones, given ``future_supply: true`` on web and a ``promise`` section
(horizon 30 days, ``lead_days: {dc: 1}``) where they lack them, published as a flow publishes them. A share of
the SKUs (``--supply-share``, default 0.2) has 1 to 3 open supply lines (the ``s`` field)
at random nodes, expected within 40 days; the channel numbers in every hash are the
ones the rules give for its positions, as the flow would write them.

Scenarios, each at every ``--connections`` value (default 8 and 32):

- ``batch``: ``POST /v1/availability/batch`` with 1,000 random SKUs of the 5,000 hot ones, ``channel=web``;
- ``promise``: ``POST /v1/availability/promise``, ``channel=web``, one line per SKU of the same
  bodies (body *i* of both scenarios holds the same SKUs), each with a qty of 1 to 60.

Each round runs both scenarios back to back (their order flipping each round), ``--rounds``
rounds (default 3) of ``--seconds`` each; medians are reported via ``load_tests/report.py``
(``promise_latency.json``, ``promise_latency_c<connections>.png``) in ``load_tests/results/``.
The load generator is ``wrk`` (``apt-get install wrk``) or ``--client httpx`` (weaker fallback;
see ``bench_api``).

``python -m load_tests.bench_promise [--connections 8 32] [--rounds 3] [--seconds 10] [--redis single|cluster]``
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from redis.typing import EncodableT, FieldT

from atp.supply import DAY, Arrival, channel_schedule
from load_tests import report
from load_tests.bench_api import (
    KEY,
    KEYS,
    RULES,
    Fill,
    HttpxCall,
    _lua_string,
    keep_writing,
    run_httpx,
    run_wrk,
    serve,
)
from local_servers import (
    LOOPBACK,
    LocalRedisCluster,
    LocalServer,
    free_port,
    start_redis,
    start_redis_cluster,
    stop_process,
)
from projection import rules_document
from projection.codec import encode_arrivals
from rulebook import published_rules, read_sources

HOT_SKUS = 5000
LINES = 1000
BODIES = 50
SCENARIOS = ("batch", "promise")
TARGET_P99_RATIO = 2.0
PROMISE = "promise:\n  horizon_days: 30\n  lead_days: {dc: 1}\n"


def promise_sources() -> dict[str, str]:
    """The shipped rules files, with web promising future supply and a ``promise`` section if they lack them."""
    sources, problems = read_sources(RULES)
    shipped = published_rules(sources)
    if problems or shipped is None:
        raise RuntimeError(f"the shipped rules do not load: {problems}")
    sources = {Path(name).name: text for name, text in sources.items()}
    if not shipped.channels["web"].future_supply:
        if "\n  web:\n" not in sources["channels.yaml"]:
            raise RuntimeError("rules/channels.yaml has no `web:` channel to switch future_supply on")
        sources["channels.yaml"] = sources["channels.yaml"].replace(
            "\n  web:\n", "\n  web:\n    future_supply: true\n", 1)
    if not any(re.search(r"^promise:", text, re.MULTILINE) for text in sources.values()):  # one file may hold it
        sources["bench-promise.yaml"] = PROMISE
    return sources


class SupplyFill(Fill):
    """``bench_api.Fill`` under the promise rules, with open supply on a share of the SKUs."""

    def __init__(self, url: str, supply_share: float) -> None:
        super().__init__(url)
        self.sources = promise_sources()
        rules = published_rules(self.sources)
        if rules is None or not rules.channels["web"].future_supply:
            raise RuntimeError("the promise rules do not load")
        self.rules = rules
        self.nodes = sorted(rules.nodes)
        self.supply_share = supply_share

    def sku_fields(self, sku: str, now: int) -> dict[FieldT, EncodableT]:
        fields = super().sku_fields(sku, now)
        holdings = []
        for name, value in fields.items():
            if isinstance(name, str) and name.startswith("n:"):
                on_hand, reserved, _ = str(value).split(",", 2)
                holdings.append((name[2:], int(on_hand), int(reserved)))
        for channel in self.rules.channels:  # the numbers the flow would write for these positions
            fields[f"c:{channel}"] = channel_schedule(
                sku, holdings, 0, (), self.rules, channel, now=now, horizon_days=1, lead_days={},
                future_supply=False,
            ).available
        picked = random.Random(sku)  # the same SKUs carry supply on every rewrite
        if picked.random() < self.supply_share:
            fields["s"] = encode_arrivals(
                Arrival(picked.choice(self.nodes), self.rng.randint(1, 200), now + self.rng.randint(0, 40) * DAY)
                for _ in range(picked.randint(1, 3))
            )
        return fields

    def all(self, skus: int) -> list[str]:
        names = super().all(skus)
        pipe = self.client.pipeline(transaction=True)  # engine-wide keys: one slot
        pipe.set(KEYS.rules_source, orjson.dumps({"version": self.rules.version, "sources": self.sources}))
        pipe.set(KEYS.rules, orjson.dumps(rules_document(self.rules)))
        pipe.set(KEYS.rules_version, self.rules.version)
        pipe.execute()
        return names


def bodies(names: Sequence[str]) -> dict[str, list[bytes]]:
    rng = random.Random(11)
    samples = [rng.sample(list(names[:HOT_SKUS]), LINES) for _ in range(BODIES)]
    return {
        "batch": [orjson.dumps({"skus": skus, "channel": "web"}) for skus in samples],
        "promise": [orjson.dumps({"channel": "web", "lines": [{"sku": sku, "qty": rng.randint(1, 60)} for sku in skus]})
                    for skus in samples],
    }


def write_scripts(work: Path, requests: dict[str, list[bytes]]) -> dict[str, Path]:
    scripts = {}
    for scenario, path in (("batch", "/v1/availability/batch"), ("promise", "/v1/availability/promise")):
        listed = ",".join(_lua_string(body.decode()) for body in requests[scenario])
        script = work / f"{scenario}.lua"
        script.write_text(
            f'local bodies = {{{listed}}}\nwrk.headers["X-API-Key"] = "{KEY}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"request = function() return wrk.format('POST', '{path}', nil, bodies[math.random(#bodies)]) end\n",
        )
        scripts[scenario] = script
    return scripts


def httpx_call(scenario: str, requests: dict[str, list[bytes]]) -> HttpxCall:
    path = "/v1/availability/batch" if scenario == "batch" else "/v1/availability/promise"
    return "POST", path, {"X-API-Key": KEY, "Content-Type": "application/json"}, requests[scenario][0]


def main() -> None:  # noqa: PLR0915 - a script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--supply-share", type=float, default=0.2, help="share of SKUs with open supply lines")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes-per-s", type=int, default=100, help="SKU rewrites a second during the load")
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk")
    parser.add_argument("--redis", choices=("single", "cluster"), default="single")
    parser.add_argument("--name", default="promise_latency", help="results file name (JSON and PNG prefixes)")
    args = parser.parse_args()
    if args.client == "wrk" and shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk, or run with --client httpx (a weaker fallback)")
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-promise-"))
    redis_server: LocalServer | None = None
    cluster: LocalRedisCluster | None = None
    process = None
    stop = threading.Event()
    writer: threading.Thread | None = None
    try:
        if args.redis == "single":
            redis_server = start_redis(log_dir=work)
            url = f"redis://{LOOPBACK}:{redis_server.port}/0"
        else:
            cluster = start_redis_cluster(masters=3, replicas_per_master=1, work_dir=work / "redis-cluster")
            url = cluster.url
        fill = SupplyFill(url, args.supply_share)
        names = fill.all(args.skus)
        with_supply = sum(1 for name in names[:HOT_SKUS] if random.Random(name).random() < args.supply_share)
        writer = threading.Thread(target=keep_writing, args=(SupplyFill(url, args.supply_share), names,
                                                             args.writes_per_s, stop), daemon=True)
        writer.start()
        requests = bodies(names)
        scripts = write_scripts(work, requests)
        port = free_port()
        env = {**os.environ, "AVAIL_REDIS_URL": url, "AVAIL_API_KEYS": orjson.dumps({KEY: ["read"]}).decode()}
        process = serve("availability_api.app:app_from_env", port, env, work / "api.log", True)
        runs: dict[str, list[dict[str, float]]] = {}
        for round_no in range(1, args.rounds + 1):
            order = SCENARIOS if round_no % 2 else SCENARIOS[::-1]  # neither scenario always goes first
            for connections in args.connections:
                for scenario in order:
                    if args.client == "wrk":
                        run = run_wrk(port, scripts[scenario], connections, args.seconds)
                    else:
                        run = run_httpx(port, httpx_call(scenario, requests), connections, args.seconds)
                    runs.setdefault(f"{scenario}/c{connections}", []).append(run)
                    print(f"round {round_no} {scenario:7s} c={connections:<3d} {run['rps']:8,.1f} req/s  "
                          f"p50 {run['p50_ms']:7.2f} ms  p99 {run['p99_ms']:7.2f} ms"
                          + (f"  non-2xx {run['non_2xx']:.0f}" if run["non_2xx"] else ""), flush=True)
        medians = {
            case: {f: statistics.median(r[f] for r in case_runs) for f in ("rps", "p50_ms", "p99_ms", "non_2xx")}
            for case, case_runs in runs.items()
        }
        rows: list[list[Any]] = []
        verdicts: dict[str, dict[str, Any]] = {}
        for connections in args.connections:
            batch, promise = medians[f"batch/c{connections}"], medians[f"promise/c{connections}"]
            ratio = promise["p99_ms"] / batch["p99_ms"]
            verdicts[f"c{connections}"] = {"p99_ratio": ratio, "target": TARGET_P99_RATIO,
                                           "met": ratio <= TARGET_P99_RATIO}
            for scenario, median in (("batch", batch), ("promise", promise)):
                rows.append([scenario, connections, median["rps"], median["p50_ms"], median["p99_ms"],
                             int(median["non_2xx"]), f"{ratio:.2f}" if scenario == "promise" else "",
                             ("yes" if ratio <= TARGET_P99_RATIO else "no") if scenario == "promise" else ""])
        result = {
            "client": args.client, "seconds": args.seconds, "rounds": args.rounds, "skus": args.skus,
            "hot_skus": HOT_SKUS, "lines": LINES, "supply_share": args.supply_share,
            "hot_skus_with_supply": with_supply, "writes_per_s": args.writes_per_s, "redis": args.redis,
            "targets": {"promise_p99_over_batch_p99": TARGET_P99_RATIO},
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "runs": runs, "medians": medians, "verdicts": verdicts,
        }
        print(f"\nmedians of {args.rounds} alternating rounds of {args.seconds} s ({args.client}); "
              f"{with_supply} of the {HOT_SKUS} hot SKUs have supply")
        report.save(args.name, result, ["scenario", "connections", "req/s", "p50 ms", "p99 ms", "non-2xx",
                                        "p99 promise/batch", "within 2×"], rows)
        for connections in args.connections:
            report.bars(
                f"{args.name}_c{connections}",
                f"{LINES} lines/SKUs, {connections} connections: latency (medians of {args.rounds})", ["p50", "p99"],
                {scenario: [medians[f"{scenario}/c{connections}"]["p50_ms"],
                            medians[f"{scenario}/c{connections}"]["p99_ms"]] for scenario in SCENARIOS},
                "ms")
    finally:
        stop.set()
        if writer is not None:
            writer.join(5)
        if process is not None:
            stop_process(process)
        if redis_server is not None:
            redis_server.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
