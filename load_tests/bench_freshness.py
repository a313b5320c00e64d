"""Freshness: from an event's produce time to its new number being readable in Redis, at offered loads.

For each offered rate (default 2k, 5k, 10k, 20k, 40k events/s, stopping after the first
point the flow cannot keep up with) a new ``avail flow`` (one worker, recovery on with 1 s
snapshots unless ``--no-recovery``, every other setting at its default unless
``--fetch-wait-ms`` says) starts on new, empty topics (2 partitions each) with its own
Redis prefix. A producer process then sends realistic background traffic from the load
generator (``--scale full``: 300 stores, 3 DCs, 50,000 SKUs, rules
``load_tests/rules_full``; opening counts included; the simulated day starts now and is
compressed into the run, so the window sees a whole day's mix and reservations count
without expiring), paced in 1 ms steps, with probes interleaved: ``--probe-rate`` ERP
counts (``snapshot`` on ``erp.inventory``) a second, round-robin over 20 probe SKUs at
``dc-east``, each with a new on_hand. A probe's ``as_of`` is the wall clock (µs) read
right before ``producer.produce()`` is called: that is its produce time (librdkafka's
default ``linger.ms`` of 5 ms is part of the latency, as for any producer with default
settings). The SKU hash's ``a`` field is the newest event time the written numbers
reflect, so a probe is visible once ``a`` ≥ its ``as_of``.

The observer (this process) enables keyspace notifications for hashes on its own Redis
and subscribes to the probe SKUs' keys: on each notification (and every 20 ms anyway)
it reads ``a`` of the SKUs with probes outstanding in one pipeline; freshness = the
time that read returned − the probe's produce time. Only probes sent after ``--warmup``
seconds count; after ``--seconds`` of measuring, the producer stops and outstanding
probes get up to ``--drain`` seconds (still outstanding: counted at that age, flagged).
The handled rate is the growth of ``{prefix}:stats`` over the measured window.

``python -m load_tests.bench_freshness [--rates 2000,5000,10000,20000,40000] [--seconds 25] [--warmup 5]
[--scale full|small] [--fetch-wait-ms 100[,20]] [--no-recovery] [--timing]``

``--timing`` runs each flow under ``load_tests.timed_flow`` and prints each step's share
of the worker thread's wall time and how often no input was polled for over 30 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import orjson
from confluent_kafka import Producer

from load_tests import report
from load_tests.generator import LoadGenerator, Scenario
from load_tests.harness import RULES, Flow, Servers, local_servers
from load_tests.produce_backlog import topic_names
from local_servers import create_topics
from projection import Keys

PROBE_SKUS = 20
PROBES = [f"PRB-{n:03d}" for n in range(PROBE_SKUS)]
TARGET_MS = 250.0


def produce(bootstrap: str, topics: dict[str, str], rate: float, probe_rate: float, seconds: float,
            scale: Literal["small", "full"], seed: int, tag: str, conn: Connection) -> None:
    """Child process: ``rate`` background events/s and ``probe_rate`` probes/s for ``seconds``."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1,
                         "queue.buffering.max.messages": 1_000_000})
    today = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    scenario = Scenario.at_scale(scale, seed=seed, batch_size=1000, run_id=tag, start=today,
                                 day_events=max(10_000, int(rate * seconds)))  # the run sweeps one whole day
    batches = LoadGenerator(scenario).batches()
    probe_topic = topics["erp.inventory"]
    buffer: list[tuple[str, bytes, bytes]] = []
    sent = probes = 0
    conn.send(("start", time.time_ns() // 1000))  # after the generator's setup: the warm-up starts here
    started = time.perf_counter()
    next_probe = 0.0
    while (now := time.perf_counter() - started) < seconds:
        due = int(now * rate) - sent
        while due > 0:
            if not buffer:
                buffer = list(reversed(list(next(batches))))
            role, key, value = buffer.pop()
            try:
                producer.produce(topics[role], value, key)
            except BufferError:
                buffer.append((role, key, value))
                producer.poll(0.001)
                break
            sent += 1
            due -= 1
        while next_probe <= now:
            sku = PROBES[probes % PROBE_SKUS]
            stamp = time.time_ns() // 1000
            iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp // 1_000_000)) + f".{stamp % 1_000_000:06d}Z"
            value = (f'{{"event_id":"{tag}-probe-{probes}","type":"snapshot","sku":"{sku}","node":"dc-east",'
                     f'"on_hand":{probes % 100_000},"as_of":"{iso}"}}').encode()
            producer.produce(probe_topic, value, sku.encode())
            conn.send((sku, stamp))
            probes += 1
            next_probe += 1 / probe_rate
        producer.poll(0)
        time.sleep(0.001)
    producer.flush(60)
    conn.send(("done", sent))


class Observer:
    """Probes outstanding per SKU; resolves them when the SKU hash's ``a`` reaches their ``as_of``."""

    def __init__(self, servers: Servers, prefix: str) -> None:
        self.client, self.keys = servers.client, Keys(prefix)
        self.client.config_set("notify-keyspace-events", "Kh")
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        # A probe's key is <prefix>:sku:{<slot group tag>}PRB-nnn. In a Redis glob only * ? [ ] and \ are
        # special (braces are literal), so the prefix is escaped and "{*}PRB-*" matches any group's tag.
        self.pubsub.psubscribe(f"__keyspace@0__:{_glob_escape(self.keys.sku_prefix)}{{*}}PRB-*")
        self.channels = {f"__keyspace@0__:{self.keys.sku(sku)}": sku for sku in PROBES}
        self.notifications = 0  # keyspace notifications seen for probe SKUs
        self.pending: dict[str, list[int]] = {}
        self.latencies: list[tuple[int, float]] = []  # (produce time µs, ms)

    def add(self, sku: str, stamp: int) -> None:
        self.pending.setdefault(sku, []).append(stamp)

    def read(self, skus: set[str]) -> None:
        skus &= {s for s, stamps in self.pending.items() if stamps}
        if not skus:
            return
        pipe = self.client.pipeline(transaction=False)
        order = sorted(skus)
        for sku in order:
            pipe.hget(self.keys.sku(sku), "a")
        values = pipe.execute()
        now = time.time_ns() // 1000
        for sku, value in zip(order, values, strict=True):
            if value is None:
                continue
            seen = int(value)
            stamps = self.pending[sku]
            self.latencies += [(s, (now - s) / 1000) for s in stamps if s <= seen]
            self.pending[sku] = [s for s in stamps if s > seen]

    def step(self, timeout: float) -> None:
        changed: set[str] = set()
        message = self.pubsub.get_message(timeout=timeout)
        while message is not None:
            if (sku := self.channels.get(message["channel"].decode())) is not None:
                changed.add(sku)
                self.notifications += 1
            message = self.pubsub.get_message(timeout=0)
        self.read(changed)

    def close(self) -> None:
        self.pubsub.close()


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern (PSUBSCRIBE, SCAN MATCH)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _worker_timing(path: Path) -> dict[str, Any]:
    """``load_tests.timed_flow``'s totals: each step's share of the worker's wall time, and the input gaps."""
    timing = orjson.loads(path.read_bytes())
    wall, gaps = timing["wall_s"], timing["gaps_ms"]
    shares = {name: seconds / wall for name, seconds in timing["seconds"].items()}
    print("    worker wall time: " + ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
          + f"; polls {len(gaps) / wall:.1f}/s apart by more than {timing['gap_ms_threshold']:g} ms "
          f"(p50 {report.percentile(gaps, 0.5):,.0f} ms, max {max(gaps, default=0):,.0f} ms)")
    return {"wall_s": wall, "shares": shares, "gaps_per_s": len(gaps) / wall,
            "gap_p50_ms": report.percentile(gaps, 0.5), "gap_max_ms": max(gaps, default=0.0)}


def run_point(servers: Servers, args: argparse.Namespace, rate: int, fetch_wait: int, index: int) -> dict[str, Any]:
    prefix = f"fr{index}"
    topics = topic_names(f"{prefix}.")
    create_topics(servers.bootstrap, dict.fromkeys(topics.values(), 2))
    env = {"AVAIL_KAFKA_FETCH_WAIT_MAX_MS": str(fetch_wait)}
    recovery = None if args.no_recovery else servers.work / f"recovery-{prefix}"
    timing = servers.work / f"timing-{prefix}.json" if args.timing else None
    flow = Flow(servers, prefix, topics, RULES[args.scale], recovery=recovery, env=env, timing=timing)
    observer = Observer(servers, prefix)
    receiver, sender = multiprocessing.get_context("spawn").Pipe(duplex=False)
    producer = multiprocessing.get_context("spawn").Process(
        target=produce, args=(servers.bootstrap, topics, rate, args.probe_rate, args.warmup + args.seconds,
                              args.scale, args.seed, prefix, sender))
    try:
        flow.start().wait_up()
        producer.start()
        began = 0
        window: list[tuple[float, int]] = []
        offered = 0
        while offered == 0:
            while receiver.poll(0):
                sku, value = receiver.recv()
                if sku == "done":
                    offered = value
                elif sku == "start":
                    began = value
                else:
                    observer.add(sku, value)
            if not producer.is_alive() and not receiver.poll(0) and offered == 0:
                raise RuntimeError(f"the producer exited with {producer.exitcode}")
            if began and not window and time.time_ns() // 1000 - began >= args.warmup * 1e6:
                window.append((time.monotonic(), flow.handled()))
            if flow.exited():
                raise RuntimeError(f"the flow exited (log {flow.log})")
            observer.step(0.02)
            observer.read(set(observer.pending))  # every 20 ms at least, whatever the notifications say
        window.append((time.monotonic(), flow.handled()))
        deadline = time.monotonic() + args.drain
        while any(observer.pending.values()) and time.monotonic() < deadline:
            observer.step(0.02)
            observer.read(set(observer.pending))
        now = time.time_ns() // 1000
        start = began + int(args.warmup * 1e6)
        measured = [(stamp, ms) for stamp, ms in observer.latencies if stamp >= start]
        measured += [(s, (now - s) / 1000) for stamps in observer.pending.values() for s in stamps if s >= start]
        measured.sort()
        late = [s for stamps in observer.pending.values() for s in stamps if s >= start]
        samples = [ms for _, ms in measured]
        handled_rate = (window[1][1] - window[0][1]) / (window[1][0] - window[0][0])
        result = {"offered_per_s": rate, "fetch_wait_max_ms": fetch_wait, "sent": offered,
                  "sent_per_s": offered / (args.warmup + args.seconds),
                  "handled_per_s": handled_rate, "probes": len(samples), "unresolved": len(late),
                  "probe_notifications": observer.notifications,
                  "p50_ms": report.percentile(samples, 0.5), "p99_ms": report.percentile(samples, 0.99),
                  "max_ms": max(samples, default=float("nan")), "latencies_ms": samples,
                  "probe_sent_s": [round((stamp - start) / 1e6, 4) for stamp, _ in measured]}
        result["saturated"] = bool(late) or handled_rate < 0.9 * min(rate, result["sent_per_s"])
        if timing is not None:
            result["worker_timing"] = _worker_timing(timing)
        print(f"{rate:>6,}/s offered, fetch wait {fetch_wait} ms: handled {handled_rate:,.0f}/s, p50 "
              f"{result['p50_ms']:,.1f} ms, p99 {result['p99_ms']:,.1f} ms, max {result['max_ms']:,.1f} ms"
              f" ({len(samples)} probes, {len(late)} unresolved, {observer.notifications} probe key notifications)")
        return result
    finally:
        if producer.pid is not None and producer.is_alive():
            producer.kill()
        producer.join()
        observer.close()
        flow.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="2000,5000,10000,20000,40000", help="offered events/s, ascending")
    parser.add_argument("--seconds", type=float, default=25.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--drain", type=float, default=20.0, help="seconds to wait for the last probes")
    parser.add_argument("--probe-rate", type=float, default=100.0, help="probes per second")
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-recovery", action="store_true", help="run the flow without a recovery store")
    parser.add_argument("--timing", action="store_true",
                        help="run the flow under load_tests.timed_flow: each step's share of the worker's time")
    parser.add_argument("--fetch-wait-ms", default="100", help="AVAIL_KAFKA_FETCH_WAIT_MAX_MS values (default 100)")
    args = parser.parse_args()
    points: list[dict[str, Any]] = []
    with local_servers("bench-freshness-") as servers:
        for fetch_wait in (int(v) for v in args.fetch_wait_ms.split(",")):
            for rate in (int(v) for v in args.rates.split(",")):
                points.append(run_point(servers, args, rate, fetch_wait, len(points)))
                if points[-1]["saturated"]:
                    break
    rows = [[p["fetch_wait_max_ms"], p["offered_per_s"], p["sent_per_s"], p["handled_per_s"], p["probes"],
             p["p50_ms"], p["p99_ms"], p["max_ms"], "yes" if p["saturated"] else "no"] for p in points]
    report.save("freshness", {"scale": args.scale, "recovery": not args.no_recovery, "seconds": args.seconds,
                              "warmup": args.warmup,
                              "probe_rate": args.probe_rate, "target_p99_ms": TARGET_MS, "points": points},
                ["fetch wait ms", "offered/s", "sent/s", "handled/s", "probes", "p50 ms", "p99 ms", "max ms",
                 "saturated"], rows)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for wait in dict.fromkeys(p["fetch_wait_max_ms"] for p in points):
        mine = [p for p in points if p["fetch_wait_max_ms"] == wait]
        for key in ("p50_ms", "p99_ms"):
            series[f"{key[:3]} (fetch wait {wait} ms)"] = ([p["offered_per_s"] for p in mine], [p[key] for p in mine])
    report.lines("freshness_by_rate", "Freshness: produce → readable in Redis (one worker)", series,
                 "offered events/s", "ms", target=TARGET_MS, log_y=True)
    report.cdf("freshness_cdf", "Freshness distribution per offered rate",
               {f"{p['offered_per_s']:,}/s, wait {p['fetch_wait_max_ms']} ms": p["latencies_ms"] for p in points
                if not p["saturated"]}, "ms", target=TARGET_MS)


if __name__ == "__main__":
    main()
