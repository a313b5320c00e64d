"""State shards: many SKUs behind one Bytewax key, each SKU's numbers as if it were alone."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

from bytewax.operators import StatefulBatchLogic

from atp.events import Receipt, Reserve
from dataflows.messages import Inbound, RawMessage
from dataflows.rules_reload import RulesChanged
from dataflows.shard_key import SHARDS, shard_of
from dataflows.shards import ShardBatch, ShardLogic
from dataflows.state_log import Compaction, StateLog
from dataflows.store_guard import Rebuild, Registry
from tests.unit.dataflows.test_store_guard import AT, active


def receipt(event_id: str, sku: str, node: str, qty: int) -> Inbound:
    return Inbound(Receipt(event_id, sku, node, qty, AT), RawMessage("t", 0, 0, None, None))


def web(applied: list) -> dict[str, int]:  # type: ignore[type-arg]
    return {w.sku: w.channels["web"] for a in applied for w in a.writes if "web" in w.channels}


class TestShardKey:
    def test_a_sku_always_lands_in_the_same_shard(self) -> None:
        # CRC-32, not hash(): the same in every process and after every restart
        assert shard_of("TV-55") == f"s{zlib.crc32(b'TV-55') % SHARDS:03d}"

    def test_skus_spread_over_many_shards(self) -> None:
        used = {shard_of(f"SKU-{i:06d}") for i in range(10_000)}
        assert len(used) == SHARDS


class TestShardLogic:
    def test_each_sku_gets_its_own_numbers_and_one_write_per_activation(self) -> None:
        logic = ShardLogic(active(), None, Registry())
        batch = ShardBatch([receipt("e1", "A", "dc-east", 5), receipt("e2", "B", "dc-east", 2),
                            receipt("e3", "A", "store-001", 4)])
        applied, keep = logic.on_batch([batch])
        assert keep == StatefulBatchLogic.RETAIN
        (result,) = applied
        assert sorted(w.sku for w in result.writes) == ["A", "B"]
        assert web(list(applied)) == {"A": 9, "B": 2}
        assert {(d.sku, d.available) for d in result.deltas} == {("A", 9), ("B", 2)}

    def test_a_resumed_shard_goes_on_from_its_snapshot(self, tmp_path: Path) -> None:
        log = StateLog(tmp_path, sync=False)
        logic = ShardLogic(active(), None, Registry(), log)
        logic.on_batch([ShardBatch([receipt("e1", "A", "dc-east", 5), receipt("e2", "B", "dc-east", 2)])])
        resumed = ShardLogic(active(), logic.snapshot(), Registry(), log)
        again = [receipt("e3", "A", "dc-east", 1), receipt("e1", "A", "dc-east", 5)]
        applied, _ = resumed.on_batch([ShardBatch(again)])
        assert web(list(applied)) == {"A": 6}  # e1 again is a duplicate: the snapshot kept its id
        assert sorted(resumed.skus) == ["A", "B"]

    def test_a_snapshot_records_only_the_skus_touched_since_the_last(self, tmp_path: Path) -> None:
        log = StateLog(tmp_path, sync=False)
        logic = ShardLogic(active(), None, Registry(), log)
        logic.on_batch([ShardBatch([receipt("e1", "A", "dc-east", 5), receipt("e2", "B", "dc-east", 2)])])
        first = logic.snapshot()
        logic.on_batch([ShardBatch([receipt("e3", "A", "dc-east", 1)])])
        second = logic.snapshot()
        assert first is not None and second is not None
        _, epochs = StateLog(tmp_path, sync=False).resume(second)
        assert [[sku for sku, *_ in records] for records in epochs] == [["A", "B"], ["A"]]
        assert logic.snapshot() == second  # nothing touched: nothing written

    def test_a_rewritten_log_resumes_the_same_numbers(self, tmp_path: Path) -> None:
        log = StateLog(tmp_path, sync=False, compaction=Compaction(ratio=0, min_bytes=0, min_age_s=0))
        logic = ShardLogic(active(), None, Registry(), log)
        for i in range(3):
            logic.on_batch([ShardBatch([receipt(f"e{i}", "A", "dc-east", 5), receipt(f"f{i}", "B", "dc-east", 2)])])
            position = logic.snapshot()
        assert position is not None and position.generation == 3
        resumed = ShardLogic(active(), position, Registry(), log)
        applied, _ = resumed.on_batch([ShardBatch([receipt("e9", "A", "dc-east", 1)])])
        assert web(list(applied)) == {"A": 16}

    def test_without_a_state_log_nothing_is_written(self, tmp_path: Path) -> None:
        logic = ShardLogic(active(), None, Registry())
        logic.on_batch([ShardBatch([receipt("e1", "A", "dc-east", 5)])])
        assert logic.snapshot() is None
        state = logic.skus["A"].state
        assert state is not None and not state.pending.event_ids  # tracking does not pile up

    def test_a_rules_change_or_rebuild_for_skus_the_shard_does_not_hold_is_dropped(self) -> None:
        logic = ShardLogic(active(), None, Registry())
        applied, keep = logic.on_batch([RulesChanged(active().rules.version, ("X",)), Rebuild(("Y",))])
        assert list(applied) == []
        assert keep == StatefulBatchLogic.DISCARD

    def test_a_rebuild_rewrites_only_the_named_skus_whole(self) -> None:
        logic = ShardLogic(active(), None, Registry())
        logic.on_batch([ShardBatch([receipt("e1", "A", "dc-east", 5), receipt("e2", "B", "dc-east", 2)])])
        (result,), _ = logic.on_batch([Rebuild(("B",))])
        assert [(w.sku, w.full) for w in result.writes] == [("B", True)]

    def test_the_timer_is_the_earliest_reservation_expiry_of_any_sku(self) -> None:
        logic = ShardLogic(active(), None, Registry())
        now = time.time_ns() // 1000
        far, near = now + 3_600_000_000, now + 60_000_000
        raw = RawMessage("t", 0, 0, None, None)
        logic.on_batch([ShardBatch([
            receipt("e1", "A", "dc-east", 5), receipt("e2", "B", "dc-east", 5),
            Inbound(Reserve("e3", "A", "r1", "web", 1, AT, "dc-east", far), raw),
            Inbound(Reserve("e4", "B", "r2", "web", 1, AT, "dc-east", near), raw),
        ])])
        due = logic.notify_at()
        assert due is not None and round(due.timestamp() * 1_000_000) == near
