"""Seeded event streams shared by the restart, replay and fault tests."""

from __future__ import annotations

import random
import time

from atp.events import (
    Disposition,
    Event,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    TransferReceived,
    TransferShipped,
)

HOUR = 3_600_000_000
SECOND = 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


NODES = ["dc-east", "dc-west", "store-001", "store-002", "popup-9"]


def random_stream(seed: int, skus: list[str], count: int) -> list[Event]:
    """A retail mix with duplicates; far-future expiries so the clock cannot matter."""
    rng = random.Random(seed)
    t0 = now_us() - 2 * HOUR
    events: list[Event] = [Receipt(f"{seed}-seed-{s}-{n}", s, n, 30, t0) for s in skus for n in NODES[:3]]
    for i in range(count):
        sku, node, at, eid = rng.choice(skus), rng.choice(NODES), t0 + SECOND + i * 1000, f"{seed}-{i}"
        roll = rng.random()
        if roll < 0.5:
            events.append(Sale(eid, sku, node, rng.randint(1, 2), at))
        elif roll < 0.65:
            events.append(Reserve(eid, sku, f"r{i % 400}", rng.choice(["web", "amazon"]), rng.randint(1, 3), at,
                                  node if rng.random() < 0.6 else None, at + 48 * HOUR))
        elif roll < 0.72:
            events.append(Release(eid, sku, f"r{rng.randrange(400)}", at))
        elif roll < 0.79:
            events.append(Pick(eid, sku, node, 1, at, f"r{rng.randrange(400)}"))
        elif roll < 0.85:
            events.append(TransferShipped(eid, sku, f"t{i % 50}", "dc-east", "store-001", 2, at))
        elif roll < 0.89:
            events.append(TransferReceived(eid, sku, f"t{rng.randrange(50)}", "dc-east", "store-001", 2, at))
        elif roll < 0.94:
            events.append(Return(eid, sku, node, 1, rng.choice(list(Disposition)), at))
        elif roll < 0.97:
            events.append(InventorySnapshot(eid, sku, node, rng.randint(0, 40), at - 30 * SECOND))
        else:
            events.append(Receipt(eid, sku, node, 12, at))
        if rng.random() < 0.05:
            events.append(events[rng.randrange(len(events))])  # a producer retry or replay
    return events
