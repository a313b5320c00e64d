"""Flow throughput: the engine next to a bare baseline, on the same backlog, in one run.

Both read the same backlog, produced once by the numpy load generator
(``load_tests/generator.py`` via ``load_tests.produce_backlog``): at ``--scale full``
300 stores, 3 DCs and 50,000 SKUs with rules ``load_tests/rules_full`` (every node feeds
channels); at ``--scale small`` 48 stores, 3 DCs, 5,000 SKUs with ``rules/``. The backlog
sits on a local Tansu broker and both write to a local Redis:

- engine: ``avail flow`` (one worker, recovery on, default 1 s snapshots) as a child process;
- baseline: one process, one confluent-kafka consumer over every partition, the same
  decoder, and one pipelined HSET per event (no state, no ATP, no versions), 1,000 messages
  a poll (its rate was the same at the engine's 5,000; at 20,000 it waits to fill each poll);
- with ``--pure``, the engine again on its pure-Python sources (``AVAIL_NATIVE=0``: the
  compiled core's before and after in one run);
- with ``--sync-writes``, the engine again with its SKU writes on the worker's thread
  (``AVAIL_REDIS_BACKGROUND_WRITES=false``: before and after the background writer in one run);
- with ``--quix``, a peer: the same logic written with Quix Streams (``load_tests/quix_peer/app.py``:
  the engine's decoder, per-SKU ``SkuState`` in Quix's RocksDB state, changed positions and
  channel numbers to Redis at each 1 s checkpoint).

Runs alternate (engine, baseline[, quix]) ``--rounds`` times; the rate of each run is measured
between 10 % and 95 % of the backlog (startup excluded) and medians are reported.
``python -m load_tests.bench_flow [--scale full|small] [--events 200000] [--seed 2026] [--rounds 3] [--pure] [--quix]
[--sync-writes] [--timing] [--profile]``

``--quix`` is opt-in: the peer runs in its own virtual environment (quixstreams pins an older
confluent-kafka and pydantic than the engine), ``.venv/quix-peer/``, built on first use from
``load_tests/quix_peer/requirements.lock`` (hash-checked, no dependency resolution). That first
build downloads about 145 MB from the package index (~35 s here) and each round gets a third
run, so the default benchmark stays as it was. With ``--quix`` the engine and Quix runs also
read the rest of the backlog after the timed span, and their Redis channel numbers are compared
SKU by SKU (``quix_check`` in the JSON).
"""

from __future__ import annotations

import argparse
import hashlib
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

import orjson

from atp.events import Topic
from load_tests import report
from load_tests.generator import Scenario
from load_tests.produce_backlog import produce_backlog, topic_names
from load_tests.profile_summary import summarise
from local_servers import LOOPBACK, start_redis, start_tansu
from projection import CHANNEL_PREFIX, Keys
from projection.connect import SyncClient, sync_client
from rulebook import load_rules

RULES = {"full": Path(__file__).parent / "rules_full", "small": Path(__file__).parent.parent / "rules"}
QUIX_PEER = Path(__file__).parent / "quix_peer"
QUIX_VENV = Path(__file__).parent.parent / ".venv" / "quix-peer"  # ignored by git, removed by make clean
QUIX_COMMIT_INTERVAL_S = 1.0  # the engine's snapshot interval (Quix's default: 5 s)
QUIX_POLL_TIMEOUT_S = 0.1  # Quix's default (1 s) stalls the last 10,000 messages of a backlog (quix_peer/app.py)


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
               rules: Path, profile: Path | None = None, finish: bool = False, *, native: bool = True,
               timing: Path | None = None, background_writes: bool = True) -> Run:
    """``finish``: after the timed span, wait until the whole backlog is handled (Redis then holds the end state).

    ``native=False``: the same install on its pure-Python sources (``AVAIL_NATIVE=0``). ``timing``: the flow
    runs under ``load_tests.timed_flow``, which keeps writing its worker's wall time per step there.
    ``background_writes=False``: SKU writes on the worker's thread (``AVAIL_REDIS_BACKGROUND_WRITES=false``).
    """
    recovery = work / f"recovery-{prefix}"
    env = engine_env(bootstrap, url, prefix, topics, rules, recovery) | {
        "AVAIL_NATIVE": "1" if native else "0", "AVAIL_REDIS_BACKGROUND_WRITES": str(background_writes).lower()}
    with (work / f"{prefix}.log").open("wb") as log:
        command = [sys.executable, "-m", "avail", "flow"]
        if timing is not None:
            command = [sys.executable, "-m", "load_tests.timed_flow", str(timing)]
        if profile is not None:  # py-spy's collapsed stacks, summarised by load_tests.profile_summary
            command = [str(Path(sys.executable).with_name("py-spy")), "record", "--rate", "100", "--format", "raw",
                       "--native", "--output", str(profile), "--", *command]  # --native: the compiled core's frames
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        client = sync_client(url)
        run = timed(client, prefix, total, [process], timeout=600)
        if finish:
            wait_all(client, prefix, total, process)
        return run
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


class QuixEnvironmentError(RuntimeError):
    """The Quix Streams peer's virtual environment could not be built."""


def quix_python(venv: Path = QUIX_VENV, lock: Path = QUIX_PEER / "requirements.lock") -> Path:
    """The peer's interpreter; builds ``venv`` from ``lock`` first when missing or made from another lock."""
    python = venv / "bin" / "python"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = venv / "requirements.lock.sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    print(f"building the Quix Streams environment {venv} from {lock} (first use: downloads about 145 MB)")
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes",
              "--no-deps", "-r", str(lock)],
             [str(python), "-c", "import quixstreams, rocksdict, confluent_kafka"]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise QuixEnvironmentError(f"could not build {venv} ({' '.join(step[:4])}...): {exc}") from exc
        if done.returncode != 0:
            lines = [line for line in (done.stderr + done.stdout).splitlines()
                     if "is ignored: it is neither a file nor a directory" not in line]
            raise QuixEnvironmentError(
                f"could not build the Quix Streams environment {venv}: `{' '.join(step[:4])} ...` exited with "
                f"{done.returncode}:\n" + "\n".join(lines[-15:])
                + "\n(building it needs the package index: run again to retry, or run without --quix)")
    stamp.write_text(digest + "\n")
    return python


def wait_all(client: SyncClient, prefix: str, total: int, process: subprocess.Popen[bytes],
             timeout: float = 300) -> None:
    """After the timed span: until every event of the backlog is counted (so Redis holds the final numbers)."""
    deadline = time.monotonic() + timeout
    while handled(client, prefix) < total:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before handling all {total} events")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {handled(client, prefix)} of {total} handled {timeout:.0f} s after timing")
        time.sleep(0.05)


def run_quix(python: Path, bootstrap: str, url: str, prefix: str, topics: dict[str, str], total: int, work: Path,
             rules: Path) -> Run:
    """The Quix Streams peer (a new consumer group and state dir), timed like the others, then read to the end."""
    state = work / f"quix-state-{prefix}"
    env = {**os.environ, **{f"AVAIL_TOPIC_{Topic(role).name}": name for role, name in topics.items()}}
    command = [str(python), str(QUIX_PEER / "app.py"), "--bootstrap", bootstrap, "--redis-url", url, "--prefix", prefix,
               "--rules-dir", str(rules), "--state-dir", str(state), "--group", f"bench-{prefix}-{time.time_ns()}",
               "--commit-interval", str(QUIX_COMMIT_INTERVAL_S), "--poll-timeout", str(QUIX_POLL_TIMEOUT_S)]
    log_path = work / f"{prefix}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        client = sync_client(url)
        run = timed(client, prefix, total, [process], timeout=600)
        wait_all(client, prefix, total, process)
        return run
    except (RuntimeError, TimeoutError) as exc:
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"the Quix peer failed ({exc}); the end of {log_path}:\n" + "\n".join(tail)) from exc
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(state, ignore_errors=True)


SAMPLED_SKUS = 200


def compare(client: SyncClient, engine: str, quix: str, channels: Sequence[str]) -> dict[str, object]:
    """The engine's and the peer's Redis numbers for the same backlog, SKU by SKU.

    Every SKU's channel numbers (absent counts as 0), and for the first ``SAMPLED_SKUS`` SKUs
    every ``n:`` (position) and ``c:`` field.
    """
    engine_keys, quix_keys = Keys(engine), Keys(quix)
    skus = sorted({s.decode() for s in client.zrange(engine_keys.skus, 0, -1)}  # type: ignore[union-attr]
                  | {s.decode() for s in client.zrange(quix_keys.skus, 0, -1)})  # type: ignore[union-attr]
    fields = [CHANNEL_PREFIX + c for c in channels]
    pipe = client.pipeline(transaction=False)
    for sku in skus:
        pipe.hmget(engine_keys.sku(sku), fields)
        pipe.hmget(quix_keys.sku(sku), fields)
    answers = pipe.execute()
    mismatched: list[dict[str, object]] = []
    differing = 0
    for index, sku in enumerate(skus):
        ours, theirs = answers[2 * index], answers[2 * index + 1]
        for field, a, b in zip(fields, ours, theirs, strict=True):
            if int(a or 0) != int(b or 0):
                differing += 1
                if len(mismatched) < 5:  # noqa: PLR2004
                    mismatched.append({"sku": sku, "field": field, "engine": int(a or 0), "quix": int(b or 0)})
    sampled = skus[:SAMPLED_SKUS]
    pipe = client.pipeline(transaction=False)
    for sku in sampled:
        pipe.hgetall(engine_keys.sku(sku))
        pipe.hgetall(quix_keys.sku(sku))
    hashes = pipe.execute()
    sampled_differing = 0
    for index in range(len(sampled)):
        ours, theirs = ({k: v for k, v in h.items() if k[:2] in (b"n:", b"c:")}
                        for h in (hashes[2 * index], hashes[2 * index + 1]))
        sampled_differing += sum(1 for k in ours.keys() | theirs.keys()
                                 if ours.get(k, b"0") != theirs.get(k, b"0"))
    return {"skus": len(skus), "only_engine": len(skus) - client.zcard(quix_keys.skus),  # type: ignore[operator]
            "only_quix": len(skus) - client.zcard(engine_keys.skus),  # type: ignore[operator]
            "channel_values": len(skus) * len(fields), "channel_mismatches": differing,
            "sampled_skus": len(sampled), "sampled_field_mismatches": sampled_differing, "examples": mismatched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=2, help="partitions per inbound topic")
    parser.add_argument("--profile", action="store_true",
                        help="one more engine run under py-spy: results/flow_profile.txt and its summary")
    parser.add_argument("--timing", action="store_true",
                        help="one more engine run under load_tests.timed_flow: each step's share of the worker's time")
    parser.add_argument("--pure", action="store_true",
                        help="one more contender each round: the engine on its pure-Python sources (AVAIL_NATIVE=0)")
    parser.add_argument("--sync-writes", action="store_true",
                        help="one more contender each round: the engine writing SKUs on its worker's thread")
    parser.add_argument("--quix", action="store_true",
                        help="a third contender each round: the same logic with Quix Streams (load_tests/quix_peer)")
    args = parser.parse_args()
    quix = None
    if args.quix:
        try:
            quix = quix_python()
        except QuixEnvironmentError as exc:
            parser.exit(2, f"--quix: {exc}\n")
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
        quix_runs: list[Run] = []
        pure_runs: list[Run] = []
        sync_runs: list[Run] = []
        checks: list[dict[str, object]] = []
        channels = sorted(load_rules(RULES[scale]).channels)
        for i in range(args.rounds):
            engine_runs.append(run_engine(bootstrap, url, f"engine{i}", topics, args.events, work, RULES[scale],
                                          finish=quix is not None))
            baseline_runs.append(run_baseline(bootstrap, url, f"base{i}", topics, args.events, args.partitions))
            line = (f"round {i + 1}: engine {engine_runs[-1].events_per_s:,.0f} events/s "
                    f"({engine_runs[-1].cpu_us_per_event:.1f} µs CPU/event), baseline "
                    f"{baseline_runs[-1].events_per_s:,.0f} events/s ({baseline_runs[-1].cpu_us_per_event:.1f} µs)")
            if args.pure:
                pure_runs.append(run_engine(bootstrap, url, f"pure{i}", topics, args.events, work, RULES[scale],
                                            native=False))
                line += (f", engine on its sources {pure_runs[-1].events_per_s:,.0f} events/s "
                         f"({pure_runs[-1].cpu_us_per_event:.1f} µs)")
            if args.sync_writes:
                sync_runs.append(run_engine(bootstrap, url, f"sync{i}", topics, args.events, work, RULES[scale],
                                            background_writes=False))
                line += (f", engine writing on its worker's thread {sync_runs[-1].events_per_s:,.0f} events/s "
                         f"({sync_runs[-1].cpu_us_per_event:.1f} µs)")
            if quix is not None:
                quix_runs.append(run_quix(quix, bootstrap, url, f"quix{i}", topics, args.events, work, RULES[scale]))
                checks.append(compare(sync_client(url), f"engine{i}", f"quix{i}", channels))
                q, check = quix_runs[-1], checks[-1]
                line += (f", quix {q.events_per_s:,.0f} events/s ({q.cpu_us_per_event:.1f} µs); in Redis "
                         f"{check['channel_mismatches']} of {check['channel_values']} channel numbers differ")
            print(line)
        if args.timing:
            steps = work / "timing.json"
            timed_run = run_engine(bootstrap, url, "timed", topics, args.events, work, RULES[scale], timing=steps)
            print(f"timed run: {timed_run.events_per_s:,.0f} events/s; the worker's wall time by step "
                  "(of it, the thread's CPU; with background writes the sinks run on their own threads):")
            totals = orjson.loads(steps.read_bytes())
            for name, seconds in sorted(totals["seconds"].items(), key=lambda item: -item[1]):
                cpu = totals["cpu_seconds"][name]
                print(f"  {name:28} {seconds / totals['wall_s']:6.1%} ({cpu / totals['wall_s']:6.1%})")
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
        series = {"engine": [*engine, result["engine_median"]], "bare baseline": [*baseline, result["baseline_median"]]}
        if quix_runs:
            quix_rates = [r.events_per_s for r in quix_runs]
            ratios = [e.events_per_s / q.events_per_s for e, q in zip(engine_runs, quix_runs, strict=True)]
            quix_cpu = statistics.median(r.cpu_us_per_event for r in quix_runs)
            result |= {
                "quix_events_per_s": quix_rates,
                "quix_cpu_us_per_event": [r.cpu_us_per_event for r in quix_runs],
                "quix_median": statistics.median(quix_rates),
                "engine_quix_ratios": ratios,  # engine events/s ÷ quix events/s, per round
                "engine_quix_ratio_median": statistics.median(ratios),
                "quix_cpu_ratio_of_medians": quix_cpu / engine_cpu,  # quix CPU per event ÷ the engine's
                "quix_commit_interval_s": QUIX_COMMIT_INTERVAL_S,
                "quix_poll_timeout_s": QUIX_POLL_TIMEOUT_S,
                "quix_check": checks,  # the engine's and quix's Redis numbers after the whole backlog, per round
            }
            columns += ["quix events/s", "engine/quix", "quix µs CPU/event"]
            for row, q, ratio in zip(rows[:-1], quix_runs, ratios, strict=True):
                row += [q.events_per_s, ratio, q.cpu_us_per_event]
            # the median row: the median of the per-round ratios (the rounds alternate, so each pairs like loads)
            rows[-1] += [result["quix_median"], result["engine_quix_ratio_median"], quix_cpu]
            series["Quix Streams"] = [*quix_rates, result["quix_median"]]
        if pure_runs:
            pure_rates = [r.events_per_s for r in pure_runs]
            pure_cpu = statistics.median(r.cpu_us_per_event for r in pure_runs)
            speedups = [e.events_per_s / p.events_per_s for e, p in zip(engine_runs, pure_runs, strict=True)]
            result |= {
                "pure_events_per_s": pure_rates,
                "pure_cpu_us_per_event": [r.cpu_us_per_event for r in pure_runs],
                "pure_median": statistics.median(pure_rates),
                "pure_ratio_of_medians": statistics.median(pure_rates) / statistics.median(baseline),
                "native_speedups": speedups,  # compiled engine events/s ÷ the same engine on its sources, per round
                "native_speedup_median": statistics.median(speedups),
                "native_cpu_speedup": pure_cpu / engine_cpu,
            }
            columns += ["sources events/s", "compiled/sources", "sources µs CPU/event"]
            for row, pure, speedup in zip(rows[:-1], pure_runs, speedups, strict=True):
                row += [pure.events_per_s, speedup, pure.cpu_us_per_event]
            rows[-1] += [result["pure_median"], result["native_speedup_median"], pure_cpu]
            series["engine, pure-Python build"] = [*pure_rates, result["pure_median"]]
        if sync_runs:
            sync_rates = [r.events_per_s for r in sync_runs]
            gains = [e.events_per_s / w.events_per_s for e, w in zip(engine_runs, sync_runs, strict=True)]
            result |= {
                "sync_writes_events_per_s": sync_rates,
                "sync_writes_cpu_us_per_event": [r.cpu_us_per_event for r in sync_runs],
                "sync_writes_median": statistics.median(sync_rates),
                "sync_writes_ratio_of_medians": statistics.median(sync_rates) / statistics.median(baseline),
                "background_write_gains": gains,  # engine events/s ÷ the engine writing on its worker, per round
                "background_write_gain_median": statistics.median(gains),
            }
            columns += ["worker-thread writes events/s", "background/worker-thread"]
            for row, sync, gain in zip(rows[:-1], sync_runs, gains, strict=True):
                row += [sync.events_per_s, gain]
            rows[-1] += [result["sync_writes_median"], result["background_write_gain_median"]]
            series["engine, writes on the worker's thread"] = [*sync_rates, result["sync_writes_median"]]
        report.save("flow_throughput", result, columns, rows)
        report.bars("flow_throughput", f"Flow throughput, {scale} scale, {args.events:,} events (one worker)",
                    [f"round {i + 1}" for i in range(args.rounds)] + ["median"], series, "events/s", target=50_000)
    finally:
        broker.stop()
        redis_server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
