"""Seeded event streams shared by the restart, replay and fault tests."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence

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
    SupplyCancelled,
    SupplyExpected,
    TransferReceived,
    TransferShipped,
)
from atp.state import replay
from projection import encode_arrivals
from rulebook import load_rules
from tests.support.engine import Engine
from tests.support.reference import Expected, expected

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


def with_supply(seed: int, events: list[Event], count: int) -> list[Event]:
    """``events`` with ``count`` section 7 events of the same SKUs spread among them (duplicates too).

    Lines are opened, revised (a newer or an older revision), cancelled and received by
    referenced receipts, and transfers shipped with an ETA, then received, in any order.
    """
    rng = random.Random(seed)
    mixed = list(events)
    skus = sorted({e.sku for e in events})
    t0, day = now_us() - 2 * HOUR, 24 * HOUR
    for i in range(count):
        sku, line, at, eid = rng.choice(skus), f"po-{rng.randrange(6)}", t0 + SECOND + i * 1000, f"{seed}-s{i}"
        roll = rng.random()
        if roll < 0.45:
            event: Event = SupplyExpected(eid, sku, line, rng.choice(NODES), rng.randint(1, 50),
                                          t0 + rng.randint(-1, 20) * day, at + rng.randint(-60, 60) * SECOND)
        elif roll < 0.55:
            event = SupplyCancelled(eid, sku, line, at)
        elif roll < 0.75:
            event = Receipt(eid, sku, rng.choice(NODES[:3]), rng.randint(1, 20), at, line)
        elif roll < 0.9:
            event = TransferShipped(eid, sku, f"d{rng.randrange(4)}", "dc-west", "store-002", rng.randint(1, 5), at,
                                    t0 + rng.randint(0, 10) * day)
        else:
            event = TransferReceived(eid, sku, f"d{rng.randrange(4)}", "dc-west", "store-002", rng.randint(1, 3), at)
        mixed.insert(rng.randrange(len(mixed) + 1), event)
        if rng.random() < 0.05:
            mixed.insert(rng.randrange(len(mixed) + 1), event)  # a producer retry or replay
    return mixed


def open_supply(engine: Engine, skus: Sequence[str], events: Sequence[Event]) -> dict[str, str]:
    """Field ``s`` of every SKU's hash as ``atp.supply`` computes it after ``events`` ("" when none is open)."""
    rules = load_rules(engine.rules_dir)
    by_sku: dict[str, list[Event]] = {sku: [] for sku in skus}
    for event in events:
        by_sku[event.sku].append(event)
    now = now_us()
    states = {sku: replay(sku, by_sku[sku], now=now, rules=rules) for sku in skus}
    return {sku: encode_arrivals(state.supply.arrivals(state.transfers)) if state.supply else ""
            for sku, state in states.items()}


def seed_from_env() -> int:
    """``AVAIL_TEST_SEED`` when set (to replay a failure), else a fresh one: print it with every failure."""
    return int(os.environ.get("AVAIL_TEST_SEED", random.randrange(1_000_000)))


def reference(engine: Engine, skus: Sequence[str], events: Sequence[Event]) -> dict[str, Expected]:
    """The reference model's numbers for every SKU after ``events`` (duplicates included)."""
    rules = load_rules(engine.rules_dir)
    by_sku: dict[str, list[Event]] = {sku: [] for sku in skus}
    for event in events:
        by_sku[event.sku].append(event)
    now = now_us()
    return {sku: expected(sku, by_sku[sku], now=now, rules=rules) for sku in skus}


def stored(engine: Engine, skus: Sequence[str]) -> dict[str, Expected]:
    """The numbers as the Redis hashes hold them (all-zero positions dropped, as the reference does)."""
    numbers = {}
    for sku in skus:
        positions = {node: (p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)
                     for node, p in engine.positions(sku).items()
                     if (p.on_hand, p.reserved, p.in_transit, p.unsellable) != (0, 0, 0, 0)}
        numbers[sku] = Expected(positions, engine.channels(sku))
    return numbers


def differences(got: dict[str, Expected], want: dict[str, Expected]) -> str:
    """Empty when equal; else how many SKUs differ and the first one, for an assertion message."""
    wrong = [sku for sku in want if got.get(sku) != want[sku]]
    if not wrong:
        return ""
    return f"{len(wrong)} of {len(want)} SKUs differ, e.g. {wrong[0]}: got {got.get(wrong[0])}, want {want[wrong[0]]}"


class SustainedProducer:
    """Produces ``events`` in small chunks from a thread, at a steady pace, until told otherwise.

    ``pause()`` returns once nothing is in flight, with how many events were produced,
    so the caller knows exactly which prefix of the stream the numbers must reflect.
    """

    def __init__(self, engine: Engine, events: Sequence[Event], chunk: int = 200, every_s: float = 0.1) -> None:
        self.engine, self.events, self.chunk, self.every_s = engine, events, chunk, every_s
        self.produced = 0
        self.error: BaseException | None = None
        self._running = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="sustained-producer", daemon=True)

    def start(self) -> None:
        self._running.set()
        self._thread.start()

    def pause(self, timeout: float = 60.0) -> int:
        self._running.clear()
        self._wait_idle(timeout)
        return self.produced

    def resume(self) -> None:
        self._idle.clear()
        self._running.set()

    def stop(self, timeout: float = 60.0) -> int:
        self._stop.set()
        self._running.set()
        self._thread.join(timeout)
        self._raise()
        return self.produced

    @property
    def exhausted(self) -> bool:
        return self.produced >= len(self.events)

    def _wait_idle(self, timeout: float) -> None:
        idle = self._idle.wait(timeout)
        self._raise()
        assert idle, f"the producer did not pause within {timeout} s"

    def _raise(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the producer thread failed: {self.error!r}") from self.error

    def _produce(self) -> None:
        try:
            while self.produced < len(self.events) and not self._stop.is_set():
                if not self._running.is_set():
                    self._idle.set()
                    self._running.wait()
                    continue
                chunk = self.events[self.produced:self.produced + self.chunk]
                self.engine.produce(chunk)
                self.produced += len(chunk)
                time.sleep(self.every_s)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which fails with it
            self.error = exc
        finally:
            self._idle.set()
