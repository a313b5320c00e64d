"""Background writes (SKUs, the feed): in order, beside the worker, finished before a snapshot returns."""

from __future__ import annotations

import threading

import pytest

from dataflows.background_writes import BackgroundWriter, BackgroundWriterFailed, WorkerWriters
from dataflows.messages import Backlog, Release
from dataflows.rules_reload import ActiveRules
from dataflows.shards import Applied, ShardBatch, ShardLogic
from dataflows.store_guard import Registry
from dataflows.throttle import ThrottleLogic
from rulebook import check_sources
from tests.unit.dataflows.test_shards import receipt
from tests.unit.dataflows.test_store_guard import active
from tests.unit.dataflows.test_throttle import LIMITED, delta

WAIT_S = 5.0


class GatedSink:
    """Records each batch; a batch is finished only once the test opens the gate."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[object]] = []
        self.fail_with = fail_with
        self.closed = False

    def write_batch(self, items: list[object]) -> None:
        self.started.set()
        if not self.gate.wait(WAIT_S):
            raise TimeoutError("the test never opened the gate")
        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append(list(items))

    def close(self) -> None:
        self.closed = True


def finishes(call: object, within_s: float) -> bool:
    """Whether ``call()`` returns within ``within_s`` (it goes on in its thread either way)."""
    done = threading.Event()

    def run() -> None:
        call()  # type: ignore[operator]
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(within_s)


class TestBackgroundWriter:
    def test_items_are_written_in_hand_over_order_and_gathered_while_a_write_runs(self) -> None:
        sink = GatedSink()
        writer = BackgroundWriter(sink)
        writer.submit("a")
        assert sink.started.wait(WAIT_S)  # "a" is being written alone
        writer.submit("b")
        writer.submit("c")
        sink.gate.set()
        writer.drain()
        assert sink.batches == [["a"], ["b", "c"]]
        writer.close()
        assert sink.closed

    def test_drain_waits_for_the_write_in_flight(self) -> None:
        sink = GatedSink()
        writer = BackgroundWriter(sink)
        writer.submit("a")
        assert sink.started.wait(WAIT_S)
        assert not finishes(writer.drain, 0.2)
        sink.gate.set()
        assert finishes(writer.drain, WAIT_S)
        assert sink.batches == [["a"]]

    def test_a_full_queue_holds_the_worker_back(self) -> None:
        sink = GatedSink()
        writer = BackgroundWriter(sink, max_pending=2)
        writer.submit("a")
        assert sink.started.wait(WAIT_S)
        writer.submit("b")
        writer.submit("c")
        held = threading.Thread(target=writer.submit, args=("d",), daemon=True)
        held.start()
        held.join(0.2)
        assert held.is_alive()
        sink.gate.set()
        held.join(WAIT_S)
        assert not held.is_alive()
        writer.drain()
        assert [item for batch in sink.batches for item in batch] == ["a", "b", "c", "d"]

    def test_a_failed_write_fails_the_worker_at_its_next_hand_over(self) -> None:
        sink = GatedSink(fail_with=ValueError("bad script"))
        writer = BackgroundWriter(sink)
        writer.submit("a")
        sink.gate.set()
        with pytest.raises(BackgroundWriterFailed, match="bad script"):
            writer.drain()
        with pytest.raises(BackgroundWriterFailed, match="bad script"):
            writer.submit("b")

    def test_close_writes_what_waits(self) -> None:
        sink = GatedSink()
        writer = BackgroundWriter(sink)
        writer.submit("a")
        writer.submit("b")
        sink.gate.set()
        writer.close()
        assert [item for batch in sink.batches for item in batch] == ["a", "b"]


class TestShardsWithABackgroundWriter:
    def shard(self, sink: GatedSink) -> tuple[ShardLogic, BackgroundWriter]:
        writers = WorkerWriters()
        writer = writers.start(BackgroundWriter(sink))
        return ShardLogic(active(), None, Registry(), writers=writers), writer

    def test_the_shard_hands_its_writes_over_and_still_emits_them_for_the_feed(self) -> None:
        sink = GatedSink()
        sink.gate.set()
        logic, writer = self.shard(sink)
        emitted, _ = logic.on_batch([ShardBatch([receipt("e1", "A", "dc-east", 5)])])
        (applied,) = emitted
        assert applied.deltas
        writer.drain()
        (batch,) = sink.batches
        (handed,) = batch
        assert isinstance(handed, Applied)
        assert [w.sku for w in handed.writes] == ["A"]

    def test_the_snapshot_returns_only_once_the_epochs_writes_are_in(self) -> None:
        # the epoch commits with the snapshot: a resume from it must find these writes in Redis
        sink = GatedSink()
        logic, _ = self.shard(sink)
        logic.on_batch([ShardBatch([receipt("e1", "A", "dc-east", 5)])])
        assert sink.started.wait(WAIT_S)
        assert not finishes(logic.snapshot, 0.2)
        sink.gate.set()
        assert finishes(logic.snapshot, WAIT_S)
        assert len(sink.batches) == 1

    def test_a_shard_built_where_no_sink_started_a_writer_refuses_to_run(self) -> None:
        with pytest.raises(BackgroundWriterFailed, match="no background writer"):
            ShardLogic(active(), None, Registry(), writers=WorkerWriters())


class TestThrottlesWithABackgroundWriter:
    def throttle(self, sink: GatedSink) -> ThrottleLogic:
        rules = check_sources({"rules.yaml": LIMITED}).rules
        assert rules is not None
        writers = WorkerWriters()
        writers.start(BackgroundWriter(sink))
        return ThrottleLogic(ActiveRules(rules), 0, None, writers=writers)

    def test_releases_go_to_the_feed_writer_in_order_and_not_down_the_flow(self) -> None:
        sink = GatedSink()
        sink.gate.set()
        logic = self.throttle(sink)
        out, _ = logic.on_batch([[delta(f"s{i}", i) for i in range(5)]])
        assert list(out) == []
        logic.snapshot()
        handed = [item for batch in sink.batches for item in batch]
        assert [(r.delta.sku, r.delta.available) for r in handed if isinstance(r, Release)] == [("s0", 0), ("s1", 1)]
        assert [b for b in handed if isinstance(b, Backlog)] == [Backlog("amazon", 3, throttled=3)]

    def test_the_snapshot_returns_only_once_the_releases_are_published(self) -> None:
        sink = GatedSink()
        logic = self.throttle(sink)
        logic.on_batch([[delta("s0", 0)]])
        assert sink.started.wait(WAIT_S)
        assert not finishes(logic.snapshot, 0.2)
        sink.gate.set()
        assert finishes(logic.snapshot, WAIT_S)
