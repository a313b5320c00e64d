"""Memory per position: the flow process's RSS and Redis's used_memory, grown to 1,000,000 positions.

A position is one SKU at one node. Each is created by one ERP opening count (a ``snapshot``
event on ``erp.inventory``, keyed by SKU) for a SKU at a node declared in
``load_tests/rules_full`` (3 DCs, 300 stores; every node feeds channels), so each SKU hash
holds its nodes' numbers and every channel's number. Shapes (``SKUSxNODES``, default
``50000x20`` — a chain where a SKU sits in 3 DCs and 17 stores — and ``10000x100``, a
narrow range in many stores) are measured one after the other, each on an empty Redis
and a new ``avail flow`` (one worker, recovery on with 1 s snapshots, default settings).

For each shape: start the flow on empty topics, wait for its heartbeat and 3 s more, and
take the baseline (``VmRSS`` in ``/proc/<pid>/status``; ``used_memory`` of ``INFO memory``).
Then, in ``--steps`` equal steps, produce the counts of the next SKUs, wait until the
``{prefix}:stats`` counters show them all handled and a snapshot interval has passed,
and read both again. Reported: growth / positions at the end, and the slope between the
first and the last step (fixed costs such as Kafka prefetch buffers and allocator pools
cancel out). ``MEMORY USAGE`` of sampled SKU hashes / nodes gives the SKU hashes' share.

``python -m load_tests.bench_memory [--positions 1000000] [--shapes 50000x20,10000x100] [--steps 4]``
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from confluent_kafka import Producer

from atp.events import Topic
from load_tests import report
from load_tests.harness import RULES, Flow, Servers, local_servers, wait_for
from load_tests.produce_backlog import PRODUCER_CONFIG, topic_names
from local_servers import create_topics
from projection import Keys

KIB = 1024
AS_OF = "2026-11-23T02:00:00.000000Z"


def node_ids(count: int) -> list[str]:
    """The first ``count`` nodes of load_tests/rules_full: the 3 DCs, then stores."""
    if not 3 <= count <= 303:  # noqa: PLR2004 - rules_full declares 3 DCs and 300 stores
        raise ValueError("nodes per SKU must be between 3 and 303")
    return ["dc-east", "dc-central", "dc-west"] + [f"store-{i:03d}" for i in range(1, count - 2)]


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
            while True:
                try:
                    producer.produce(topic, value, sku)
                    break
                except BufferError:
                    producer.poll(0.05)
            made += 1
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("counts still undelivered after 120 s")
    return made


def settled(flow: Flow, expected: int, interval: float) -> None:
    """Until ``expected`` events are handled, then one snapshot interval (state written, epoch closed)."""
    wait_for(lambda: flow.handled() >= expected, 1800, f"{expected:,} counts handled", flow, every=0.2)
    time.sleep(interval + 1.0)


def sku_hash_bytes(servers: Servers, prefix: str, skus: int, sample: int = 200) -> float:
    keys = Keys(prefix)
    pipe = servers.client.pipeline(transaction=False)
    picks = random.Random(7).sample(range(skus), min(sample, skus))
    for index in picks:
        pipe.memory_usage(keys.sku(f"SKU-{index:07d}"), samples=0)
    sizes = [int(s) for s in pipe.execute() if s is not None]
    return sum(sizes) / len(sizes) if sizes else float("nan")


def measure(servers: Servers, shape: tuple[int, int], steps: int, index: int) -> dict[str, Any]:
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
        span = last["positions"] - first["positions"]
        peak = next(int(line.split()[1]) * KIB for line in open(f"/proc/{flow.pid}/status")  # noqa: PTH123, SIM115
                    if line.startswith("VmHWM:"))
        return {
            "skus": skus, "nodes_per_sku": width, "positions": done, "flow_rss_start": rss0,
            "redis_used_start": redis0, "flow_peak_rss": peak, "points": points,
            "flow_per_position": last["flow_per_position"], "redis_per_position": last["redis_per_position"],
            "flow_slope": (last["flow_rss"] - first["flow_rss"]) / span if span else float("nan"),
            "redis_slope": (last["redis_used"] - first["redis_used"]) / span if span else float("nan"),
            "sku_hash_per_position": sku_hash_bytes(servers, prefix, skus) / width,
        }
    finally:
        flow.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1_000_000, help="positions per shape")
    parser.add_argument("--shapes", default="50000x20,10000x100", help="SKUSxNODES,...: SKUs scaled to --positions")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    shapes = []
    for text in args.shapes.split(","):
        width = int(text.split("x")[1])
        shapes.append((args.positions // width, width))
    results = []
    with local_servers("bench-memory-") as servers:
        for index, shape in enumerate(shapes):
            results.append(measure(servers, shape, args.steps, index))
    rows = [[f"{r['skus']:,} SKUs x {r['nodes_per_sku']} nodes", r["positions"],
             r["flow_per_position"], r["flow_slope"], r["redis_per_position"], r["redis_slope"],
             r["sku_hash_per_position"], int(r["flow_peak_rss"]) / 2**20] for r in results]
    columns = ["shape", "positions", "flow B/position", "flow B/position (slope)", "Redis B/position",
               "Redis B/position (slope)", "SKU hash B/position", "flow peak RSS MiB"]
    report.save("memory", {"targets": {"flow_bytes_per_position": KIB, "redis_bytes_per_position": 250},
                           "method": "one ERP opening count per position; one worker; recovery on",
                           "shapes": results}, columns, rows)
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
