"""Micro-benchmark of the pure core on one 300-node SKU.

Prints µs per applied event (by event family), µs per full channel recompute (a new
rule set), and bytes per position (pickled snapshot and live memory). Run:
``python -m load_tests.bench_core``.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from atp.events import (
    Disposition,
    Event,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    TransferReceived,
    TransferShipped,
)
from atp.rules import Channel, Node, NodeSelector, Publish, RuleSet, SafetyStockMatch, SafetyStockRule
from atp.state import DAY, SkuState

SKU = "TV-55-OLED"
T0 = 1_795_000_000_000_000
REPEATS = 7


def retailer_rules(stores: int = 297, pickup_buffer: int = 1) -> RuleSet:
    nodes = {f"dc-{i}": Node(f"dc-{i}", "dc") for i in range(3)}
    for i in range(stores):
        tags = {"pickup"} | ({"ship_from_store"} if i % 3 == 0 else set())
        nodes[f"store-{i:03d}"] = Node(f"store-{i:03d}", "store", frozenset(tags | {f"region-{i % 6}"}))
    return RuleSet(
        nodes=nodes,
        safety_stock_default=0,
        safety_stock_rules=(
            SafetyStockRule(SafetyStockMatch(sku="TV-*", node_type="store"), 1),
            SafetyStockRule(SafetyStockMatch(node_type="store"), 2),
        ),
        channels={
            "web": Channel("web", NodeSelector(types=frozenset({"dc"}), tags=frozenset({"ship_from_store"})),
                           node_buffer={"store": 1}),
            "store_pickup": Channel("store_pickup", NodeSelector(tags=frozenset({"pickup"})),
                                    node_buffer={"store": pickup_buffer}),
            "amazon": Channel("amazon", NodeSelector(types=frozenset({"dc"})), percent=Fraction(80), buffer=2,
                              min_available=3, max_available=500, publish=Publish(20, 1000)),
            "walmart": Channel("walmart", NodeSelector(types=frozenset({"dc"}), exclude=frozenset({"dc-2"})),
                               percent=Fraction(50), min_available=5),
        },
    )


def day_of_events(rules: RuleSet, count: int, seed: int = 7) -> list[Event]:
    """A retail-day mix over every node: sales dominate."""
    rng = random.Random(seed)
    nodes = list(rules.nodes)
    events: list[Event] = [Receipt(f"seed-{n}", SKU, n, 200, T0) for n in nodes]
    open_reservations: list[str] = []
    for i in range(count):
        at = T0 + 1 + i * 1_000_000
        node = rng.choice(nodes)
        roll = rng.random()
        eid = f"ev-{i}"
        if roll < 0.55:
            events.append(Sale(eid, SKU, node, rng.randint(1, 2), at))
        elif roll < 0.70:
            rid = f"res-{i}"
            open_reservations.append(rid)
            events.append(Reserve(eid, SKU, rid, rng.choice(["web", "amazon"]), 1, at,
                                  node if rng.random() < 0.5 else None, at + 900_000_000))
        elif roll < 0.78 and open_reservations:
            events.append(Release(eid, SKU, open_reservations.pop(rng.randrange(len(open_reservations))), at))
        elif roll < 0.86 and open_reservations:
            events.append(Pick(eid, SKU, node, 1, at, open_reservations.pop()))
        elif roll < 0.90:
            events.append(TransferShipped(eid, SKU, f"tr-{i}", "dc-0", node if node != "dc-0" else "dc-1", 5, at))
        elif roll < 0.93:
            events.append(TransferReceived(eid, SKU, f"tr-{i - 40}", "dc-0", node if node != "dc-0" else "dc-1", 5, at))
        elif roll < 0.97:
            events.append(Return(eid, SKU, node, 1, rng.choice(list(Disposition)), at))
        else:
            events.append(Receipt(eid, SKU, node, 24, at))
    return events


def median_us(run: Callable[[], int]) -> float:
    """Median over REPEATS of µs per operation; ``run`` returns how many it did."""
    samples = []
    for _ in range(REPEATS):
        gc.collect()
        start = time.perf_counter_ns()
        done = run()
        samples.append((time.perf_counter_ns() - start) / 1000 / done)
    return statistics.median(samples)


def bench_apply(rules: RuleSet, events: list[Event]) -> dict[str, float]:
    warm = events[: len(rules.nodes)]
    stream = events[len(rules.nodes):]
    now = stream[-1].occurred_at if stream else T0

    def run() -> int:
        state = SkuState(SKU)
        for e in warm:
            state.apply(e, now=now, rules=rules)
        start = time.perf_counter_ns()
        for e in stream:
            state.apply(e, now=now, rules=rules)
        run.elapsed = time.perf_counter_ns() - start  # type: ignore[attr-defined]
        return len(stream)

    samples = []
    for _ in range(REPEATS):
        gc.collect()
        run()
        samples.append(run.elapsed / 1000 / len(stream))  # type: ignore[attr-defined]
    state = SkuState(SKU)
    for e in events:
        state.apply(e, now=now, rules=rules)
    duplicates = events[-2000:]
    dup = median_us(lambda: sum(1 for e in duplicates if state.apply(e, now=now, rules=rules)))
    return {"apply_us": statistics.median(samples), "duplicate_us": dup}


def bench_recompute(rules: RuleSet, events: list[Event]) -> dict[str, float]:
    """A rules change: every safety stock and channel number of the SKU recomputed.

    ``cold``: the first SKU after a reload also fills the rule set's per-node
    eligibility cache; ``warm``: every further SKU under the same rule set.
    """
    now = events[-1].occurred_at
    state = SkuState(SKU)
    for e in events:
        state.apply(e, now=now, rules=rules)
    variants = [retailer_rules(pickup_buffer=b) for b in range(2, 2 + 40)]

    def cold() -> int:
        for variant in variants:
            variant.__dict__.pop("_eligibility", None)
            state.refresh(now=now, rules=variant)
        return len(variants)

    def warm() -> int:
        for variant in variants:
            state.refresh(now=now, rules=variant)
        return len(variants)

    return {"channel_recompute_cold_us": median_us(cold), "channel_recompute_warm_us": median_us(warm)}


def bytes_per_position(rules: RuleSet, events: list[Event]) -> dict[str, float]:
    now = events[-1].occurred_at
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = SkuState(SKU)
    for e in events:
        state.apply(e, now=now + DAY, rules=rules)
    live = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    positions = len(state.positions)
    return {
        "positions": positions,
        "events": len(events),
        "pickled_bytes_per_position": len(state.to_bytes()) / positions,
        "live_bytes_per_position": live / positions,
    }


def main() -> None:
    rules = retailer_rules()
    events = day_of_events(rules, 20_000)
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "nodes": len(rules.nodes),
        **bench_apply(rules, events),
        **bench_recompute(rules, events),
        "memory_fresh": bytes_per_position(rules, events[: len(rules.nodes)]),
        "memory_day": bytes_per_position(rules, events),
    }
    print(f"machine: {results['machine']}")
    print(f"SKU with {results['nodes']} nodes, 4 channels, median of {REPEATS} runs")
    print(f"  apply, mixed retail day          {results['apply_us']:8.2f} µs/event")
    print(f"  apply, duplicate event_id        {results['duplicate_us']:8.2f} µs/event")
    print(f"  rules change, first SKU (cold)   {results['channel_recompute_cold_us']:8.1f} µs/SKU")
    print(f"  rules change, every other SKU    {results['channel_recompute_warm_us']:8.1f} µs/SKU")
    fresh, day = results["memory_fresh"], results["memory_day"]
    retained = day["events"] - fresh["events"]
    for kind in ("pickled", "live"):
        per_position = fresh[f"{kind}_bytes_per_position"]
        per_event = (day[f"{kind}_bytes_per_position"] - per_position) * day["positions"] / retained
        results[f"{kind}_bytes_per_retained_event"] = per_event
        print(f"  {kind:<7} {per_position:6.0f} B/position + {per_event:5.0f} B per event retained in the window")
    out = Path("load_tests/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_core.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
