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
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Literal

from load_tests import report
from load_tests.bench_flow import RULES, Run, engine_env, timed
from load_tests.generator import Scenario
from load_tests.harness import Servers, local_servers
from load_tests.produce_backlog import produce_backlog, topic_names
from local_servers import LOOPBACK, free_port

TOPOLOGIES = [(1, 1), (1, 2), (2, 1)]  # (processes, workers per process)


def run_topology(servers: Servers, prefix: str, topics: dict[str, str], total: int, rules: Path,
                 processes: int, workers: int) -> Run:
    """Events/s and CPU per event of one engine of ``processes`` x ``workers`` over the whole backlog."""
    recovery = servers.work / f"recovery-{prefix}"
    env = engine_env(servers.bootstrap, servers.url, prefix, topics, rules, recovery)
    addresses = ";".join(f"{LOOPBACK}:{free_port()}" for _ in range(processes))
    children = []
    with (servers.work / f"{prefix}.log").open("wb") as log:
        for index in range(processes):
            command = [sys.executable, "-m", "avail", "flow", "-w", str(workers)]
            if processes > 1:
                command += ["-i", str(index), "-a", addresses]
            children.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
    try:
        return timed(servers.client, prefix, total, children, timeout=600)
    finally:
        for child in children:
            child.kill()
            child.wait()
        shutil.rmtree(recovery, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--scale", choices=("small", "full"), default="small")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4, help="partitions per inbound topic")
    args = parser.parse_args()
    with local_servers("bench-scaling-") as servers:
        topics = topic_names()
        scale: Literal["small", "full"] = args.scale
        scenario = Scenario.at_scale(scale, seed=args.seed, day_events=args.events)
        produced = produce_backlog(servers.bootstrap, scenario, args.events, partitions=args.partitions)
        if produced.failed:
            raise RuntimeError(f"{produced.failed} messages failed to produce")
        rates: dict[tuple[int, int], list[float]] = {topology: [] for topology in TOPOLOGIES}
        for round_ in range(args.rounds):
            for processes, workers in TOPOLOGIES:
                run = run_topology(servers, f"p{processes}w{workers}r{round_}", topics, args.events, RULES[scale],
                                   processes, workers)
                rates[processes, workers].append(run.events_per_s)
                print(f"round {round_ + 1}: {processes} process(es) x {workers} worker(s): "
                      f"{run.events_per_s:,.0f} events/s ({run.cpu_us_per_event:.1f} µs CPU/event)")
        one = statistics.median(rates[1, 1])
        rows: list[list[object]] = []
        for (processes, workers), runs in rates.items():
            median = statistics.median(runs)
            rows.append([f"{processes} x {workers}", median, median / one, median / one / (processes * workers)])
        result = {"scale": scale, "events": args.events, "partitions": args.partitions, "rounds": args.rounds,
                  "events_per_s": {f"{p}x{w}": runs for (p, w), runs in rates.items()}}
        report.save("flow_scaling", result, ["processes x workers", "events/s (median)", "speed-up",
                                             "efficiency per worker"], rows)


if __name__ == "__main__":
    main()
