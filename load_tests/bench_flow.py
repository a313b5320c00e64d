"""Flow throughput: the engine next to a bare baseline, on the same backlog, in one run.

Both read the same backlog, produced once by the numpy load generator
(``load_tests/generator.py`` via ``load_tests.produce_backlog``): at ``--scale full``
300 stores, 3 DCs and 50,000 SKUs with rules ``load_tests/rules_full`` (every node feeds
channels); at ``--scale small`` 48 stores, 3 DCs, 5,000 SKUs with ``rules/``. The backlog
sits on a local Tansu broker and both write to a local Redis:

- engine: ``avail flow`` (one worker, recovery on, default 1 s snapshots) as a child process;
- baseline: one process, one confluent-kafka consumer over every partition, the same
  decoder, and one pipelined HSET per event (no state, no ATP, no versions).

Runs alternate (engine, baseline) ``--rounds`` times; the rate of each run is measured
between 10 % and 95 % of the backlog (startup excluded) and medians are reported.
``python -m load_tests.bench_flow [--scale full|small] [--events 200000] [--seed 2026] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from atp.events import Topic
from load_tests import report
from load_tests.generator import Scenario
from load_tests.produce_backlog import produce_backlog, topic_names
from load_tests.profile_summary import summarise
from local_servers import LOOPBACK, start_redis, start_tansu
from projection import Keys
from projection.connect import SyncClient, sync_client

RULES = {"full": Path(__file__).parent / "rules_full", "small": Path(__file__).parent.parent / "rules"}


def handled(client: SyncClient, prefix: str) -> int:
    """Events the engine under ``prefix`` counted in ``Keys(prefix).stats`` (one Redis or a cluster)."""
    stats: dict[bytes, bytes] = client.hgetall(Keys(prefix).stats)  # type: ignore[assignment]
    return sum(int(v) for k, v in stats.items() if k in (b"applied", b"duplicate") or k.startswith(b"rejected:"))


class Run(NamedTuple):
    events_per_s: float
    cpu_us_per_event: float  # the process's user + system CPU over the same span: robust to a busy machine


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(client: SyncClient, prefix: str, total: int, processes: Sequence[subprocess.Popen[bytes]],
          timeout: float) -> Run:
    """Events/s and CPU per event (of all ``processes``) between 10 % and 95 % of ``total`` handled."""
    marks: dict[float, tuple[float, float]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = handled(client, prefix)
        now = time.monotonic()
        for share in (0.10, 0.95):
            if share not in marks and done >= share * total:
                marks[share] = (now, sum(cpu_seconds(process.pid) for process in processes))
        if 0.95 in marks:
            (start, cpu_start), (end, cpu_end) = marks[0.10], marks[0.95]
            return Run(0.85 * total / (end - start), (cpu_end - cpu_start) * 1e6 / (0.85 * total))
        exited = [process.returncode for process in processes if process.poll() is not None]
        if exited:
            raise RuntimeError(f"process exited with {exited[0]}")
        time.sleep(0.02)
    raise TimeoutError(f"only {handled(client, prefix)} of {total} handled in {timeout:.0f} s")


def engine_env(bootstrap: str, url: str, prefix: str, topics: dict[str, str], rules: Path,
               recovery: Path) -> dict[str, str]:
    """The environment of ``avail flow`` reading the backlog's topics into its own key prefix."""
    env = {**os.environ, "AVAIL_KAFKA_BOOTSTRAP": bootstrap, "AVAIL_REDIS_URL": url, "AVAIL_REDIS_PREFIX": prefix,
           "AVAIL_RULES_DIR": str(rules), "AVAIL_RECOVERY_DIR": str(recovery), "AVAIL_LOG_LEVEL": "WARNING"}
    env.update({f"AVAIL_TOPIC_{Topic(role).name}": name for role, name in topics.items()})
    return env


BASELINE = r"""
import sys, orjson
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
from atp.decoding import decode_event
from atp.rejections import Rejection
from projection import Keys
from projection.connect import sync_client
bootstrap, url, prefix = sys.argv[1:4]
topics, partitions = sys.argv[4].split(","), int(sys.argv[5])
client, keys = sync_client(url), Keys(prefix)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "baseline", "enable.auto.commit": False,
                     "fetch.wait.max.ms": 100, "queued.max.messages.kbytes": 8192})
consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(partitions)])
while True:
    messages = consumer.consume(1000, 0.1)
    if not messages:
        continue
    pipe = client.pipeline(transaction=False)
    ok = 0
    for m in messages:
        if m.error() is not None:
            continue
        event = decode_event(m.value())
        if isinstance(event, Rejection):
            continue
        pipe.hset(keys.sku(event.sku), getattr(event, "node", None) or "x", m.offset())
        ok += 1
    pipe.hincrby(keys.stats, "applied", ok)
    pipe.execute()
"""


def run_engine(bootstrap: str, url: str, prefix: str, topics: dict[str, str], total: int, work: Path,
               rules: Path, profile: Path | None = None) -> Run:
    recovery = work / f"recovery-{prefix}"
    env = engine_env(bootstrap, url, prefix, topics, rules, recovery)
    with (work / f"{prefix}.log").open("wb") as log:
        command = [sys.executable, "-m", "avail", "flow"]
        if profile is not None:  # py-spy's collapsed stacks, summarised by load_tests.profile_summary
            command = [str(Path(sys.executable).with_name("py-spy")), "record", "--rate", "100", "--format", "raw",
                       "--output", str(profile), "--", *command]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        return timed(sync_client(url), prefix, total, [process], timeout=600)
    finally:
        if profile is not None:
            process.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        process.kill()
        process.wait()
        shutil.rmtree(recovery, ignore_errors=True)


def run_baseline(bootstrap: str, url: str, prefix: str, topics: dict[str, str], total: int, partitions: int) -> Run:
    process = subprocess.Popen([sys.executable, "-c", BASELINE, bootstrap, url, prefix,  # noqa: S603
                                ",".join(topics.values()), str(partitions)])
    try:
        return timed(sync_client(url), prefix, total, [process], timeout=600)
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=2, help="partitions per inbound topic")
    parser.add_argument("--profile", action="store_true",
                        help="one more engine run under py-spy: results/flow_profile.txt and its summary")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    broker, redis_server = start_tansu(log_dir=work), start_redis(log_dir=work)
    try:
        bootstrap, url = f"{LOOPBACK}:{broker.port}", f"redis://{LOOPBACK}:{redis_server.port}/0"
        topics = topic_names()  # the topics produce_backlog writes to
        started = time.monotonic()
        scale: Literal["small", "full"] = args.scale
        scenario = Scenario.at_scale(scale, seed=args.seed, day_events=args.events)
        produced = produce_backlog(bootstrap, scenario, args.events, partitions=args.partitions)
        if produced.failed:
            raise RuntimeError(f"{produced.failed} messages failed to produce")
        print(f"backlog: {produced.events} events ({produced.opening_counts} opening counts, {scale} scale)"
              f" produced in {time.monotonic() - started:.1f} s")
        engine_runs: list[Run] = []
        baseline_runs: list[Run] = []
        for i in range(args.rounds):
            engine_runs.append(run_engine(bootstrap, url, f"engine{i}", topics, args.events, work, RULES[scale]))
            baseline_runs.append(run_baseline(bootstrap, url, f"base{i}", topics, args.events, args.partitions))
            print(f"round {i + 1}: engine {engine_runs[-1].events_per_s:,.0f} events/s "
                  f"({engine_runs[-1].cpu_us_per_event:.1f} µs CPU/event), baseline "
                  f"{baseline_runs[-1].events_per_s:,.0f} events/s ({baseline_runs[-1].cpu_us_per_event:.1f} µs)")
        if args.profile:
            report.RESULTS.mkdir(parents=True, exist_ok=True)
            stacks = report.RESULTS / "flow_profile.txt"
            profiled = run_engine(bootstrap, url, "profiled", topics, args.events, work, RULES[scale], stacks)
            print(f"profiled run: {profiled.events_per_s:,.0f} events/s (py-spy costs some)")
            print(summarise(stacks, report.RESULTS / "flow_profile_summary.txt"))
        engine = [r.events_per_s for r in engine_runs]
        baseline = [r.events_per_s for r in baseline_runs]
        engine_cpu = statistics.median(r.cpu_us_per_event for r in engine_runs)
        baseline_cpu = statistics.median(r.cpu_us_per_event for r in baseline_runs)
        result = {
            "scale": scale, "seed": args.seed, "rules": str(RULES[scale].relative_to(RULES["small"].parent)),
            "events": args.events, "partitions": args.partitions, "rounds": args.rounds,
            "engine_events_per_s": engine, "baseline_events_per_s": baseline,
            "engine_cpu_us_per_event": [r.cpu_us_per_event for r in engine_runs],
            "baseline_cpu_us_per_event": [r.cpu_us_per_event for r in baseline_runs],
            "engine_median": statistics.median(engine), "baseline_median": statistics.median(baseline),
            "ratio_of_medians": statistics.median(engine) / statistics.median(baseline),
            "cpu_ratio_of_medians": baseline_cpu / engine_cpu,
        }
        columns = ["run", "engine events/s", "baseline events/s", "ratio", "engine µs CPU/event",
                   "baseline µs CPU/event"]
        rows: list[list[object]] = [
            [f"round {i + 1}", e.events_per_s, b.events_per_s, e.events_per_s / b.events_per_s, e.cpu_us_per_event,
             b.cpu_us_per_event] for i, (e, b) in enumerate(zip(engine_runs, baseline_runs, strict=True))]
        rows.append(["median", result["engine_median"], result["baseline_median"], result["ratio_of_medians"],
                     engine_cpu, baseline_cpu])
        report.save("flow_throughput", result, columns, rows)
        report.bars("flow_throughput", f"Flow throughput, {scale} scale, {args.events:,} events (one worker)",
                    [f"round {i + 1}" for i in range(args.rounds)] + ["median"],
                    {"engine": [*engine, result["engine_median"]], "bare baseline": [*baseline,
                                                                                     result["baseline_median"]]},
                    "events/s", target=50_000)
    finally:
        broker.stop()
        redis_server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
