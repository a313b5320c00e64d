"""Memory per position and per open supply line: the flow's RSS and Redis's used_memory, at 1,000,000 positions.

A position is one SKU at one node. Each is created by one ERP opening count (a ``snapshot``
event on ``erp.inventory``, keyed by SKU) for a SKU at a node declared in
``load_tests/rules_full`` (3 DCs, 300 stores; every node feeds channels), so each SKU hash
holds its nodes' numbers and every channel's number. Shapes (``SKUSxNODES``, default
``50000x20`` — a chain where a SKU sits in 3 DCs and 17 stores — and ``10000x100``, a
narrow range in many stores) are measured one after the other, each on an empty Redis
and a new ``avail flow`` (one worker, recovery on with 1 s snapshots, default settings).

For each shape: start the flow on empty topics, wait for its heartbeat and 3 s more, and
take the baseline (``VmRSS`` in ``/proc/<pid>/status``; ``used_memory`` of ``INFO memory``).
Reported for the flow: its whole RSS over the positions at the end (the interpreter, Bytewax
and the libraries included: issue 22's measure), its growth over the positions, and the slope.
Then, in ``--steps`` equal steps, produce the counts of the next SKUs, wait until the
``{prefix}:stats`` counters show them all handled and a snapshot interval has passed,
and read both again. Reported: growth / positions at the end, and the slope between the
first and the last step (fixed costs such as Kafka prefetch buffers and allocator pools
cancel out). ``MEMORY USAGE`` of sampled SKU hashes / nodes gives the SKU hashes' share.

Then open supply lines (contract section 7), in the same flow, one ``--lines`` phase
after the other (``PERxSHARE``: ``PER`` ``supply_expected`` lines on ``erp.supply`` for
``SHARE`` of the SKUs, at the DCs in turn; default ``2x100%,1x100%,100x2%``: two lines
on every SKU, a third on every SKU (its hash's ``s`` field then passes Redis's default
``hash-max-listpack-value`` of 64 bytes), then 100 more on every 50th SKU). After each
phase has been handled and a snapshot interval has passed, both are read again: growth
per open line, per position with the lines so far, and ``MEMORY USAGE`` / ``OBJECT
ENCODING`` of the hashes of the SKUs the phase gave lines, before and after. ``--lines ""``
measures positions only.

In process, with no servers (first, a few seconds): 100 ``SkuState``s at the shape's
nodes, their pickled snapshot size and live bytes (``tracemalloc``) with 0, 2 and 100
open lines each, and with each line revised once (a revision replaces the line and adds
its event id to the de-duplication window).

``python -m load_tests.bench_memory [--positions 1000000] [--shapes 50000x20,10000x100] [--steps 4]
[--lines 2x100%,1x100%,100x2%]``
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any, NamedTuple

from confluent_kafka import Producer

from atp.changes import take_change
from atp.decoding import parse_timestamp
from atp.events import InventorySnapshot, SupplyExpected, Topic
from atp.rules import RuleSet
from atp.state import DAY, SkuState
from load_tests import report
from load_tests.harness import RULES, Flow, Servers, local_servers, wait_for
from load_tests.produce_backlog import PRODUCER_CONFIG, topic_names
from local_servers import create_topics
from projection import Keys
from rulebook import load_rules

KIB = 1024
AS_OF = "2026-11-23T02:00:00.000000Z"
AS_OF_US = parse_timestamp(AS_OF) or 0
DCS = ("dc-east", "dc-central", "dc-west")


class Lines(NamedTuple):
    """``per_sku`` open lines on ``share`` of the SKUs (every ``round(1 / share)``-th)."""

    per_sku: int
    share: float

    @classmethod
    def parse(cls, text: str) -> Lines:
        per_sku, _, share = text.partition("x")
        return cls(int(per_sku), float(share.rstrip("%")) / 100)

    def skus(self, skus: int) -> range:
        return range(0, skus, max(1, round(1 / self.share)))

    def __str__(self) -> str:
        return f"{self.per_sku} lines x {self.share:.0%} of SKUs"


def node_ids(count: int) -> list[str]:
    """The first ``count`` nodes of load_tests/rules_full: the 3 DCs, then stores."""
    if not 3 <= count <= 303:  # noqa: PLR2004 - rules_full declares 3 DCs and 300 stores
        raise ValueError("nodes per SKU must be between 3 and 303")
    return [*DCS] + [f"store-{i:03d}" for i in range(1, count - 2)]


def _send(producer: Producer, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def produce_counts(bootstrap: str, topic: str, skus: range, nodes: list[str], tag: str) -> int:
    """One opening count per (SKU, node), SKU by SKU; returns how many were produced."""
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    rng = random.Random(skus.start)
    made = 0
    for index in skus:
        sku = f"SKU-{index:07d}".encode()
        for node in nodes:
            value = (b'{"event_id":"%s-%d","type":"snapshot","sku":"%s","node":"%s","on_hand":%d,"as_of":"%s"}'
                     % (tag.encode(), made + skus.start * len(nodes), sku, node.encode(), rng.randrange(0, 300),
                        AS_OF.encode()))
            _send(producer, topic, value, sku)
            made += 1
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("counts still undelivered after 120 s")
    return made


def produce_lines(bootstrap: str, topic: str, skus: range, lines: int, first: int, tag: str) -> int:
    """``lines`` new supply lines per SKU, at the DCs in turn, numbered from ``first``; returns how many."""
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    rng = random.Random(first)
    made = 0
    for index in skus:
        sku = b"SKU-%07d" % index
        for line in range(first, first + lines):
            value = (b'{"type":"supply_expected","event_id":"%s-L%d-%d","sku":"%s","supply_id":"PO-%07d-%04d",'
                     b'"node":"%s","qty":%d,"expected_at":"%s","occurred_at":"%s"}'
                     % (tag.encode(), index, line, sku, index, line, DCS[line % 3].encode(), rng.randrange(12, 480),
                        _stamp(AS_OF_US + rng.randrange(1, 30) * DAY), _stamp(AS_OF_US + 1_000_000)))
            _send(producer, topic, value, sku)
            made += 1
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("lines still undelivered after 120 s")
    return made


def _stamp(micros: int) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(micros // 1_000_000)).encode()


def settled(flow: Flow, expected: int, interval: float) -> None:
    """Until ``expected`` events are handled, then one snapshot interval (state written, epoch closed)."""
    wait_for(lambda: flow.handled() >= expected, 1800, f"{expected:,} counts handled", flow, every=0.2)
    time.sleep(interval + 1.0)


def sku_hash_bytes(servers: Servers, prefix: str, skus: Sequence[int], sample: int = 200) -> tuple[float, str]:
    """Mean ``MEMORY USAGE`` of a sample of the SKUs' hashes, and their encodings (e.g. ``listpack 200``)."""
    keys = Keys(prefix)
    pipe = servers.client.pipeline(transaction=False)
    picks = random.Random(7).sample(list(skus), min(sample, len(skus)))
    for index in picks:
        pipe.memory_usage(keys.sku(f"SKU-{index:07d}"), samples=0)
        pipe.object("encoding", keys.sku(f"SKU-{index:07d}"))
    replies = pipe.execute()
    sizes = [int(s) for s in replies[::2] if s is not None]
    encodings: dict[str, int] = {}
    for encoding in replies[1::2]:
        name = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
        encodings[name] = encodings.get(name, 0) + 1
    mean = sum(sizes) / len(sizes) if sizes else float("nan")
    return mean, ", ".join(f"{name} {count}" for name, count in sorted(encodings.items()))


def in_process(rules: RuleSet, width: int, skus: int = 100) -> dict[str, float]:
    """Pickled and live (tracemalloc) bytes of ``skus`` SKU states: per position, per open line, per revision."""
    nodes = node_ids(width)
    now = AS_OF_US + DAY

    def apply(states: list[SkuState], events: Any) -> None:
        for state, batch in zip(states, events, strict=True):
            state.apply_many(batch, now=now, rules=rules)
            take_change(state)  # the flow takes the pending change at every snapshot

    def line(index: int, number: int, revision: int) -> SupplyExpected:
        node = DCS[number % 3].encode().decode()  # a str of its own, as decoding makes one per event
        return SupplyExpected(f"e-{index}-L{number}-{revision}", f"SKU-{index:07d}", f"PO-{index:07d}-{number:04d}",
                              node, 12 + number, AS_OF_US + (5 + revision) * DAY, AS_OF_US + 1_000_000 + revision)

    def measured(lines: int, revised: bool) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        states = [SkuState(f"SKU-{i:07d}") for i in range(skus)]
        apply(states, ([InventorySnapshot(f"e-{i}-{n}", f"SKU-{i:07d}", n, 40, AS_OF_US) for n in nodes]
                       for i in range(skus)))
        apply(states, ([line(i, k, 0) for k in range(lines)] for i in range(skus)))
        if revised:
            apply(states, ([line(i, k, 1) for k in range(lines)] for i in range(skus)))
        gc.collect()
        live = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return sum(len(state.to_bytes()) for state in states), live

    base, two, many, many_revised = (measured(0, False), measured(2, False), measured(100, False),
                                     measured(100, True))
    return {
        "pickled_per_position": base[0] / skus / width, "live_per_position": base[1] / skus / width,
        "pickled_per_line_2": (two[0] - base[0]) / skus / 2, "live_per_line_2": (two[1] - base[1]) / skus / 2,
        "pickled_per_line_100": (many[0] - base[0]) / skus / 100,
        "live_per_line_100": (many[1] - base[1]) / skus / 100,
        "pickled_per_revision": (many_revised[0] - many[0]) / skus / 100,
        "live_per_revision": (many_revised[1] - many[1]) / skus / 100,
    }


def measure(servers: Servers, shape: tuple[int, int], steps: int, index: int,
            phases: Sequence[Lines]) -> dict[str, Any]:
    skus, width = shape
    nodes = node_ids(width)
    prefix = f"mem{index}"
    topics = topic_names(f"{prefix}.")
    create_topics(servers.bootstrap, dict.fromkeys(topics.values(), 2))
    servers.client.flushdb()
    flow = Flow(servers, prefix, topics, RULES["full"], recovery=servers.work / f"recovery-{prefix}")
    interval = 5.0
    try:
        flow.start().wait_up()
        time.sleep(3.0)
        rss0, redis0 = flow.rss_bytes(), servers.used_memory()
        print(f"{skus:,} SKUs x {width} nodes: flow RSS at start {rss0 / 2**20:.0f} MiB,"
              f" Redis {redis0 / 2**20:.1f} MiB")
        points: list[dict[str, float]] = []
        done = 0
        for step in range(1, steps + 1):
            chunk = range((step - 1) * skus // steps, step * skus // steps)
            started = time.monotonic()
            done += produce_counts(servers.bootstrap, topics[Topic.ERP_INVENTORY.value], chunk, nodes, prefix)
            settled(flow, done, interval)
            rss, used = flow.rss_bytes(), servers.used_memory()
            points.append({"positions": done, "flow_rss": rss, "redis_used": used,
                           "flow_per_position": (rss - rss0) / done, "redis_per_position": (used - redis0) / done})
            print(f"  {done:>9,} positions: flow +{(rss - rss0) / 2**20:,.0f} MiB ({(rss - rss0) / done:,.0f} B each),"
                  f" Redis +{(used - redis0) / 2**20:,.1f} MiB ({(used - redis0) / done:,.0f} B each)"
                  f" [{time.monotonic() - started:.0f} s]")
        first, last = points[0], points[-1]
        positions, span = done, last["positions"] - first["positions"]
        hash_bytes, encodings = sku_hash_bytes(servers, prefix, range(skus))
        handled, opened = done, 0
        rss, used = int(last["flow_rss"]), int(last["redis_used"])
        phase_results = []
        for number, phase in enumerate(phases):
            given = phase.skus(skus)
            before, before_encodings = sku_hash_bytes(servers, prefix, given)
            started = time.monotonic()
            made = produce_lines(servers.bootstrap, topics[Topic.ERP_SUPPLY.value], given, phase.per_sku,
                                 opened, f"{prefix}p{number}")
            handled += made
            settled(flow, handled, interval)
            opened += phase.per_sku
            lines = handled - done
            after, after_encodings = sku_hash_bytes(servers, prefix, given)
            rss_after, used_after = flow.rss_bytes(), servers.used_memory()
            phase_results.append({
                "lines": str(phase), "skus_with_lines": len(given), "new_lines": made, "open_lines": lines,
                "flow_per_line": (rss_after - rss) / made, "redis_per_line": (used_after - used) / made,
                "flow_per_position": (rss_after - rss0) / positions,
                "redis_per_position": (used_after - redis0) / positions,
                "hash_before": before, "hash_after": after, "encodings_before": before_encodings,
                "encodings_after": after_encodings, "flow_rss": rss_after, "redis_used": used_after,
            })
            print(f"  + {made:,} lines ({phase}): flow +{(rss_after - rss) / 2**20:,.1f} MiB"
                  f" ({(rss_after - rss) / made:,.0f} B each), Redis +{(used_after - used) / 2**20:,.1f} MiB"
                  f" ({(used_after - used) / made:,.0f} B each); their SKU hashes {before:,.0f} → {after:,.0f} B"
                  f" ({after_encodings}) [{time.monotonic() - started:.0f} s]")
            rss, used = rss_after, used_after
        peak = next(int(line.split()[1]) * KIB for line in open(f"/proc/{flow.pid}/status")  # noqa: PTH123, SIM115
                    if line.startswith("VmHWM:"))
        return {
            "skus": skus, "nodes_per_sku": width, "positions": positions, "flow_rss_start": rss0,
            "redis_used_start": redis0, "flow_peak_rss": peak, "points": points,
            "flow_per_position": last["flow_per_position"], "redis_per_position": last["redis_per_position"],
            "flow_slope": (last["flow_rss"] - first["flow_rss"]) / span if span else float("nan"),
            "redis_slope": (last["redis_used"] - first["redis_used"]) / span if span else float("nan"),
            "sku_hash_per_position": hash_bytes / width, "sku_hash_encodings": encodings, "phases": phase_results,
            # every phase together: one phase's RSS step also holds what processing its burst left in the
            # allocator, which the next phase reuses
            "flow_per_line": (rss - last["flow_rss"]) / (handled - done) if handled > done else float("nan"),
            "redis_per_line": (used - last["redis_used"]) / (handled - done) if handled > done else float("nan"),
        }
    finally:
        flow.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1_000_000, help="positions per shape")
    parser.add_argument("--shapes", default="50000x20,10000x100", help="SKUSxNODES,...: SKUs scaled to --positions")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--lines", default="2x100%,1x100%,100x2%",
                        help="PERxSHARE,...: open lines per SKU on a share of the SKUs, phase after phase")
    args = parser.parse_args()
    shapes = []
    for text in args.shapes.split(","):
        width = int(text.split("x")[1])
        shapes.append((args.positions // width, width))
    phases = [Lines.parse(text) for text in args.lines.split(",") if text]
    rules = load_rules(RULES["full"])
    states = {str(width): in_process(rules, width) for _, width in shapes}  # JSON keys are strings
    for nodes, sizes in states.items():
        print(f"in process, a SKU at {nodes} nodes: {sizes['pickled_per_position']:.0f} B pickled /"
              f" {sizes['live_per_position']:.0f} B live per position; per open line (2 / 100 a SKU)"
              f" {sizes['pickled_per_line_2']:.0f} / {sizes['pickled_per_line_100']:.0f} B pickled,"
              f" {sizes['live_per_line_2']:.0f} / {sizes['live_per_line_100']:.0f} B live; per revision"
              f" {sizes['pickled_per_revision']:.0f} B pickled, {sizes['live_per_revision']:.0f} B live")
    results = []
    with local_servers("bench-memory-") as servers:
        for index, shape in enumerate(shapes):
            results.append(measure(servers, shape, args.steps, index, phases))
    for r in results:  # the whole process over the positions: the interpreter and libraries included
        r["flow_rss_per_position"] = int(r["points"][-1]["flow_rss"]) / int(r["points"][-1]["positions"])
    rows = [[f"{r['skus']:,} SKUs x {r['nodes_per_sku']} nodes", r["positions"], r["flow_rss_per_position"],
             r["flow_per_position"], r["flow_slope"], r["redis_per_position"], r["redis_slope"],
             r["sku_hash_per_position"], int(r["flow_peak_rss"]) / 2**20] for r in results]
    columns = ["shape", "positions", "flow RSS B/position (all)", "flow B/position (growth)",
               "flow B/position (slope)", "Redis B/position", "Redis B/position (slope)", "SKU hash B/position",
               "flow peak RSS MiB"]
    line_columns = ["shape", "lines added", "open lines", "flow B/line", "Redis B/line",
                    "flow B/position without → with", "Redis B/position without → with",
                    "their SKU hash B before → after", "hash encodings after"]
    line_rows = [[f"{r['skus']:,}x{r['nodes_per_sku']}", p["lines"], p["open_lines"], p["flow_per_line"],
                  p["redis_per_line"], f"{r['flow_per_position']:,.0f} → {p['flow_per_position']:,.0f}",
                  f"{r['redis_per_position']:,.1f} → {p['redis_per_position']:,.1f}",
                  f"{p['hash_before']:,.0f} → {p['hash_after']:,.0f}", p["encodings_after"]]
                 for r in results for p in r["phases"]]
    line_rows += [[f"{r['skus']:,}x{r['nodes_per_sku']}", "all phases", r["phases"][-1]["open_lines"],
                   r["flow_per_line"], r["redis_per_line"], "", "", "", ""] for r in results if r["phases"]]
    report.save("memory", {"targets": {"flow_bytes_per_position": KIB, "redis_bytes_per_position": 250},
                           "method": "one ERP opening count per position, then open supply lines by phase;"
                                     " one worker; recovery on",
                           "in_process": states, "shapes": results,
                           "lines_table": {"columns": line_columns, "rows": line_rows}}, columns, rows)
    if line_rows:
        print(report.table(line_columns, line_rows))
    labels = [f"{r['skus']:,}x{r['nodes_per_sku']}" for r in results]
    report.bars("memory_flow", "Flow process: RSS growth per position", labels,
                {"total / positions": [float(r["flow_per_position"]) for r in results],
                 "slope first→last step": [float(r["flow_slope"]) for r in results]},
                "bytes per position", target=KIB)
    report.bars("memory_redis", "Redis: used_memory growth per position", labels,
                {"total / positions": [float(r["redis_per_position"]) for r in results],
                 "slope first→last step": [float(r["redis_slope"]) for r in results]},
                "bytes per position", target=250)


if __name__ == "__main__":
    main()
