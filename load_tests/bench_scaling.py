"""Flow throughput by topology: one worker, two workers in one process, two processes, on one backlog.

The backlog (``load_tests.produce_backlog``, the numpy load generator) sits on a local
Tansu broker with ``--partitions`` per inbound topic; each run is a fresh engine (own
Redis prefix and recovery store) reading all of it, and runs alternate topologies
``--rounds`` times. Reported per topology: events/s between 10 % and 95 % of the
backlog (medians), the speed-up over one worker, and the efficiency per worker. The
broker, Redis and the flow share this machine's cores, so read the ratios, not the
absolute rates. ``python -m load_tests.bench_scaling [--scale small] [--events 200000] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import redis

from atp.events import Topic
from load_tests import report
from load_tests.bench_flow import RULES, handled
from load_tests.generator import Scenario
from load_tests.produce_backlog import produce_backlog, topic_names
from local_servers import LOOPBACK, free_port, start_redis, start_tansu

TOPOLOGIES = [(1, 1), (1, 2), (2, 1)]  # (processes, workers per process)


def run_topology(bootstrap: str, url: str, prefix: str, topics: dict[str, str], total: int, work: Path,
                 rules: Path, processes: int, workers: int) -> float:
    """Events/s of one engine of ``processes`` x ``workers`` over the whole backlog."""
    recovery = work / f"recovery-{prefix}"
    env = {**os.environ, "AVAIL_KAFKA_BOOTSTRAP": bootstrap, "AVAIL_REDIS_URL": url, "AVAIL_REDIS_PREFIX": prefix,
           "AVAIL_RULES_DIR": str(rules), "AVAIL_RECOVERY_DIR": str(recovery), "AVAIL_LOG_LEVEL": "WARNING"}
    env.update({f"AVAIL_TOPIC_{Topic(role).name}": name for role, name in topics.items()})
    addresses = ";".join(f"{LOOPBACK}:{free_port()}" for _ in range(processes))
    children = []
    with (work / f"{prefix}.log").open("wb") as log:
        for index in range(processes):
            command = [sys.executable, "-m", "avail", "flow", "-w", str(workers)]
            if processes > 1:
                command += ["-i", str(index), "-a", addresses]
            children.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
    client = redis.Redis.from_url(url)
    try:
        marks: dict[float, float] = {}
        deadline = time.monotonic() + 600
        while 0.95 not in marks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{prefix}: only {handled(client, prefix)} of {total} handled")
            if any(child.poll() is not None for child in children):
                raise RuntimeError(f"{prefix}: a flow process exited; see {work / f'{prefix}.log'}")
            done, now = handled(client, prefix), time.monotonic()
            for share in (0.10, 0.95):
                if share not in marks and done >= share * total:
                    marks[share] = now
            time.sleep(0.02)
        return 0.85 * total / (marks[0.95] - marks[0.10])
    finally:
        for child in children:
            child.kill()
            child.wait()
        client.close()
        shutil.rmtree(recovery, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--scale", choices=("small", "full"), default="small")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4, help="partitions per inbound topic")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    broker, redis_server = start_tansu(log_dir=work), start_redis(log_dir=work)
    try:
        bootstrap, url = f"{LOOPBACK}:{broker.port}", f"redis://{LOOPBACK}:{redis_server.port}/0"
        topics = topic_names()
        scale: Literal["small", "full"] = args.scale
        scenario = Scenario.at_scale(scale, seed=args.seed, day_events=args.events)
        produced = produce_backlog(bootstrap, scenario, args.events, partitions=args.partitions)
        if produced.failed:
            raise RuntimeError(f"{produced.failed} messages failed to produce")
        rates: dict[tuple[int, int], list[float]] = {topology: [] for topology in TOPOLOGIES}
        for round_ in range(args.rounds):
            for processes, workers in TOPOLOGIES:
                prefix = f"p{processes}w{workers}r{round_}"
                rate = run_topology(bootstrap, url, prefix, topics, args.events, work, RULES[scale], processes,
                                    workers)
                rates[processes, workers].append(rate)
                print(f"round {round_ + 1}: {processes} process(es) x {workers} worker(s): {rate:,.0f} events/s")
        one = statistics.median(rates[1, 1])
        rows: list[list[object]] = []
        for (processes, workers), runs in rates.items():
            median = statistics.median(runs)
            rows.append([f"{processes} x {workers}", median, median / one, median / one / (processes * workers)])
        result = {"scale": scale, "events": args.events, "partitions": args.partitions, "rounds": args.rounds,
                  "events_per_s": {f"{p}x{w}": runs for (p, w), runs in rates.items()}}
        report.save("flow_scaling", result, ["processes x workers", "events/s (median)", "speed-up",
                                             "efficiency per worker"], rows)
    finally:
        broker.stop()
        redis_server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
