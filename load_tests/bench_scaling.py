"""Flow throughput by topology and Redis mode: one worker, two workers in one process, two processes,
each against one Redis and against a Redis Cluster, on one backlog.

The backlog (``load_tests.produce_backlog``, the numpy load generator) sits on a local
Tansu broker with ``--partitions`` per inbound topic; each run is a fresh engine (own
Redis prefix and recovery store) reading all of it. ``--redis`` picks the stores:
``single`` is the one local redis-server of ``load_tests.harness.local_servers``;
``cluster`` is a local Redis Cluster of 3 masters with 1 replica each
(``local_servers.start_redis_cluster``, started once for the whole benchmark and
stopped by it), reached as ``redis+cluster://`` like any deployment would, so the
engine's cluster path runs as is (writes grouped per slot group, ``WAIT`` for the
replica at the end of each batch); ``both`` (the default) runs each topology on both,
back to back, the order flipping every round. Runs alternate ``--rounds`` times, after
one unmeasured warm-up run (1 x 1) per Redis mode: on a fresh cluster the sink's first
batch meets NOSCRIPT and is retried whole, which counts it twice in ``{prefix}:stats``
and would end a measured run early; a warmed-up Redis has the script, as a running
deployment does. Each run then finishes the backlog (unmeasured) and is flagged
(``overcounted``) unless its counter ends equal to it.

Reported per (topology, Redis mode): events/s between 10 % and 95 % of the backlog
(medians), CPU µs per event of the flow processes, the speed-up over one worker on one
Redis and over one worker of the same mode, the efficiency per worker (speed-up over one
worker on one Redis / workers), and per topology the cluster/single ratio (of the medians,
and the median of each round's pair). Written: ``flow_scaling.json`` and
``flow_scaling.png`` in ``load_tests/results/`` (``report.RESULTS``).

The broker, Redis (all six cluster nodes), and the flow share this machine's cores, so
read the ratios, not the absolute rates: on a small machine the cluster's extra nodes
and replication compete with the flow for CPU, so its ratio here is its overhead, not
its scale-out.

Freshness is not measured here: the backlog's events carry the times of a fixed simulated
day, so ``{prefix}:progress`` (``applied:`` vs ``event:``) gives the backlog's age, not the
lag from an event to its application; ``load_tests.bench_freshness`` measures freshness
on live traffic.

``python -m load_tests.bench_scaling [--scale small] [--events 200000] [--rounds 2] [--redis single|cluster|both]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

from load_tests import report
from load_tests.bench_flow import RULES, Run, engine_env, handled, timed
from load_tests.generator import Scenario
from load_tests.harness import Servers, local_cluster, local_servers, wait_for
from load_tests.produce_backlog import produce_backlog, topic_names
from local_servers import LOOPBACK, free_port

TOPOLOGIES = [(1, 1), (1, 2), (2, 1)]  # (processes, workers per process)
MODES = ("single", "cluster")
CLUSTER_MASTERS, CLUSTER_REPLICAS = 3, 1
OVERCOUNTED: list[str] = []  # runs whose stats counter ended above the backlog (see the module's docstring)


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
        run = timed(servers.client, prefix, total, children, timeout=600)
        # Past the measured window: let the engine finish, then its counter must equal the backlog.
        wait_for(lambda: handled(servers.client, prefix) >= total, 120, f"{prefix}: the whole backlog handled")
        time.sleep(0.2)  # a double-counted batch lands after the crossing at the latest with the next write
        counted = handled(servers.client, prefix)
        if counted != total:
            OVERCOUNTED.append(f"{prefix}: {counted:,} handled of {total:,}")
            print(f"warning: {prefix} counted {counted:,} events handled of {total:,}: its rate is off",
                  file=sys.stderr)
        return run
    finally:
        for child in children:
            child.kill()
            child.wait()
        shutil.rmtree(recovery, ignore_errors=True)


def label(processes: int, workers: int) -> str:
    return f"{processes}x{workers}"


def summarise(runs: dict[tuple[str, int, int], list[Run]], modes: list[str],
              rounds: int) -> tuple[list[list[object]], dict[str, object]]:
    """Table rows (one per topology and mode) and the JSON summary of medians and ratios."""
    rate = {case: statistics.median(r.events_per_s for r in case_runs) for case, case_runs in runs.items()}
    cpu = {case: statistics.median(r.cpu_us_per_event for r in case_runs) for case, case_runs in runs.items()}
    base_mode = "single" if "single" in modes else modes[0]
    base = rate[base_mode, 1, 1]
    rows: list[list[object]] = []
    summary: dict[str, dict[str, object]] = {}
    for processes, workers in TOPOLOGIES:
        topology = label(processes, workers)
        entry: dict[str, object] = {}
        for mode in modes:
            median = rate[mode, processes, workers]
            speed_up = median / base
            efficiency = speed_up / (processes * workers)
            same_mode = median / rate[mode, 1, 1]
            ratio: object = ""
            if mode == "cluster" and "single" in modes:
                single = rate["single", processes, workers]
                ratio = median / single
                pairs = [c.events_per_s / s.events_per_s for c, s in
                         zip(runs["cluster", processes, workers], runs["single", processes, workers], strict=True)]
                entry["cluster_over_single"] = ratio
                entry["cluster_over_single_per_round"] = pairs
                entry["cluster_over_single_median_of_rounds"] = statistics.median(pairs)
                ratio = f"{ratio:.2f} (rounds: {', '.join(f'{p:.2f}' for p in pairs)})"
            entry[mode] = {"events_per_s_median": median, "cpu_us_per_event_median": cpu[mode, processes, workers],
                           f"speed_up_over_1x1_{base_mode}": speed_up, "speed_up_over_1x1_same_mode": same_mode,
                           "efficiency_per_worker": efficiency}
            rows.append([f"{processes} x {workers}", mode, median, cpu[mode, processes, workers], speed_up,
                         same_mode, efficiency, ratio])
        summary[topology] = entry
    return rows, {"base": f"1x1 {base_mode}", "rounds": rounds, "by_topology": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--scale", choices=("small", "full"), default="small")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4, help="partitions per inbound topic")
    parser.add_argument("--redis", choices=("single", "cluster", "both"), default="both",
                        help="one local Redis, a local Redis Cluster (3 masters + 3 replicas), or both (default)")
    args = parser.parse_args()
    modes = list(MODES) if args.redis == "both" else [args.redis]
    with local_servers("bench-scaling-") as servers, ExitStack() as stack:
        stores = {"single": servers}
        if "cluster" in modes:
            stores["cluster"] = stack.enter_context(local_cluster(servers, CLUSTER_MASTERS, CLUSTER_REPLICAS))
            print(f"Redis Cluster: {CLUSTER_MASTERS} masters + {CLUSTER_MASTERS * CLUSTER_REPLICAS} replicas at "
                  f"{stores['cluster'].url}")
        topics = topic_names()
        scale: Literal["small", "full"] = args.scale
        scenario = Scenario.at_scale(scale, seed=args.seed, day_events=args.events)
        produced = produce_backlog(servers.bootstrap, scenario, args.events, partitions=args.partitions)
        if produced.failed:
            raise RuntimeError(f"{produced.failed} messages failed to produce")
        for mode in modes:  # unmeasured: loads the sink's script, as in any Redis the engine ran on before
            warmup = run_topology(stores[mode], f"{mode}-warmup", topics, args.events, RULES[scale], 1, 1)
            print(f"warm-up, 1 x 1, {mode} Redis (not counted): {warmup.events_per_s:,.0f} events/s", flush=True)
        warmup_overcounted = list(OVERCOUNTED)  # expected on a cold cluster: what the warm-up is for
        OVERCOUNTED.clear()
        runs: dict[tuple[str, int, int], list[Run]] = {
            (mode, p, w): [] for mode in modes for p, w in TOPOLOGIES}
        for round_ in range(args.rounds):
            order = modes if round_ % 2 == 0 else modes[::-1]  # neither mode always goes first
            for processes, workers in TOPOLOGIES:
                for mode in order:
                    run = run_topology(stores[mode], f"{mode}-p{processes}w{workers}r{round_}", topics, args.events,
                                       RULES[scale], processes, workers)
                    runs[mode, processes, workers].append(run)
                    print(f"round {round_ + 1}: {processes} process(es) x {workers} worker(s), {mode:7s} Redis: "
                          f"{run.events_per_s:,.0f} events/s ({run.cpu_us_per_event:.1f} µs CPU/event)", flush=True)
        rows, summary = summarise(runs, modes, args.rounds)
        result = {"scale": scale, "events": args.events, "partitions": args.partitions, "rounds": args.rounds,
                  "redis": modes, "cluster": {"masters": CLUSTER_MASTERS, "replicas_per_master": CLUSTER_REPLICAS},
                  "events_per_s": {f"{mode}/{label(p, w)}": [r.events_per_s for r in case_runs]
                                   for (mode, p, w), case_runs in runs.items()},
                  "cpu_us_per_event": {f"{mode}/{label(p, w)}": [r.cpu_us_per_event for r in case_runs]
                                       for (mode, p, w), case_runs in runs.items()},
                  "overcounted": list(OVERCOUNTED), "warmup_overcounted": warmup_overcounted,
                  "freshness": "not measured: the backlog's event times are a fixed simulated day "
                               "(see load_tests.bench_freshness)",
                  **summary}
        report.save("flow_scaling", result, [
            "processes x workers", "Redis", "events/s (median)", "µs CPU/event", f"speed-up vs {summary['base']}",
            "speed-up vs 1x1 same Redis", "efficiency per worker", "cluster/single"], rows)
        report.bars("flow_scaling", f"Flow events/s by topology and Redis ({scale}, {args.events:,} events, "
                    f"medians of {args.rounds})", [f"{p} proc x {w} worker" for p, w in TOPOLOGIES],
                    {mode if mode == "single" else f"cluster {CLUSTER_MASTERS}+{CLUSTER_MASTERS * CLUSTER_REPLICAS}":
                     [statistics.median(r.events_per_s for r in runs[mode, p, w]) for p, w in TOPOLOGIES]
                     for mode in modes}, "events/s")


if __name__ == "__main__":
    main()
