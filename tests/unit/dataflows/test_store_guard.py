"""Rebuilding Redis from the flow's state: the registry and the SKU logic's part in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atp.events import Receipt
from dataflows.logic import SkuLogic
from dataflows.messages import Inbound, RawMessage, SkuWrite
from dataflows.rules_reload import ActiveRules
from dataflows.store_guard import REBUILD, Registry, _Guard
from projection import Keys
from rulebook import check_sources

RULES = """\
nodes:
  - {id: dc-east, type: dc}
  - {id: store-001, type: store}
channels:
  web:
    nodes: {types: [dc, store]}
"""
AT = 1_790_000_000_000_000


def active() -> ActiveRules:
    rules = check_sources({"rules.yaml": RULES}).rules
    assert rules is not None
    return ActiveRules(rules, sources={"rules.yaml": RULES})


def receipt(event_id: str, node: str, qty: int) -> Inbound:
    return Inbound(Receipt(event_id, "TV-55", node, qty, AT), RawMessage("t", 0, 0, None, None))


def writes(emitted: object) -> list[SkuWrite]:
    return [item for item in emitted if isinstance(item, SkuWrite)]  # type: ignore[attr-defined]


class TestRegistry:
    def test_a_new_sku_registers_with_the_generation_of_its_first_whole_write(self) -> None:
        registry = Registry("g1")
        logic = SkuLogic(active(), None, registry)
        (first,) = writes(logic.on_batch([receipt("e1", "dc-east", 5)])[0])
        assert first.full
        assert registry.behind("g1") == []
        assert registry.behind("g2") == ["TV-55"]

    def test_a_resumed_sku_registers_at_once_and_keeps_its_generation(self) -> None:
        registry = Registry("g1")
        logic = SkuLogic(active(), None, registry)
        logic.on_batch([receipt("e1", "dc-east", 5)])
        resumed_registry = Registry("g1")
        SkuLogic(active(), logic.snapshot(), resumed_registry)
        assert len(resumed_registry) == 1
        assert resumed_registry.behind("g1") == []

    def test_a_snapshot_from_before_generations_counts_as_behind(self) -> None:
        logic = SkuLogic(active(), None, Registry("g1"))
        logic.on_batch([receipt("e1", "dc-east", 5)])
        state, version, _ = logic.snapshot()
        registry = Registry("g1")
        SkuLogic(active(), (state, version), registry)  # type: ignore[arg-type]
        assert registry.behind("g1") == ["TV-55"]

    def test_lost_skus_are_handed_out_once(self) -> None:
        registry = Registry()
        registry.report_lost(["B", "A"])
        registry.report_lost(["A"])
        assert registry.take_lost() == ["A", "B"]
        assert registry.take_lost() == []

    def test_one_guard_per_process(self) -> None:
        registry = Registry()
        assert registry.claim_guard() is True
        assert registry.claim_guard() is False


class TestRebuild:
    def test_rebuild_writes_the_whole_hash_under_the_new_generation(self) -> None:
        registry = Registry("g1")
        logic = SkuLogic(active(), None, registry)
        logic.on_batch([receipt("e1", "dc-east", 5), receipt("e2", "store-001", 3)])
        (partial,) = writes(logic.on_batch([receipt("e3", "dc-east", 1)])[0])
        assert not partial.full and set(partial.positions) == {"dc-east"}
        registry.generation = "g2"
        (whole,) = writes(logic.on_batch([REBUILD])[0])
        assert whole.full
        assert set(whole.positions) == {"dc-east", "store-001"}
        assert whole.channels == {"web": 9}
        assert whole.version > partial.version
        assert registry.behind("g2") == []

    def test_rebuild_of_a_sku_this_worker_does_not_hold_is_dropped(self) -> None:
        logic = SkuLogic(active(), None, Registry())
        emitted, _ = logic.on_batch([REBUILD])
        assert list(emitted) == []


class TestGuardPartitions:
    def test_the_idle_guard_of_a_second_worker_is_polled_every_interval(self) -> None:
        # An input that sleeps holds back its worker's epoch, and every stateful step waits for it.
        guard = _Guard(Registry("g1"), active(), None, Keys("t"), timedelta(seconds=1), 100,  # type: ignore[arg-type]
                       active_guard=False)
        before = datetime.now(UTC)
        assert guard.next_batch() == []
        awake = guard.next_awake()
        assert awake is not None and awake - before <= timedelta(seconds=1.5)
