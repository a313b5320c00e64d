"""State shards: the stateful step is keyed by shard, each shard holding many SKUs.

Bytewax's cost is per item and per key activation, not per event, so the flow moves
batches: a poll's messages travel as one item, are decoded together and split into one
``ShardBatch`` per shard, and each shard's logic applies its SKUs' events and emits one
``Applied`` for the sink and the feed. A SKU's shard is a CRC-32 of its id, stable across
processes and restarts (``shard_key``).

A shard's snapshot is a ``LogPosition``: the state itself goes to the shard's state log,
one record per epoch holding only what the touched SKUs changed (``state_log``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr

from atp.changes import Change, restore
from atp.pending import PendingChange
from atp.values import ByFields
from dataflows.background_writes import BackgroundWriter, WorkerWriters
from dataflows.logic import Emitted, SkuLogic, now_us
from dataflows.messages import ChannelDelta, DeadLetter, Inbound, SkuWrite
from dataflows.rules_reload import ActiveRules, RulesChanged
from dataflows.shard_key import shard_of
from dataflows.state_log import LogPosition, ShardLog, SkuRecord, StateLog
from dataflows.store_guard import Rebuild, Registry

logger = logging.getLogger(__name__)  # "log" is the state log here

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class ShardBatch(ByFields):
    """Events of one shard's SKUs from one poll, in arrival order."""

    events: list[Inbound] = field(default_factory=list)


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class Applied(ByFields):
    """What one activation of a shard produced."""

    writes: list[SkuWrite] = field(default_factory=list)
    deltas: list[ChannelDelta] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # statistics of all the activation's events


ShardIncoming = ShardBatch | RulesChanged | Rebuild


class ShardLogic(StatefulBatchLogic[ShardIncoming, Applied, LogPosition | None]):
    """Routes each item to its SKUs' ``SkuLogic`` and collects their output in one ``Applied``.

    Without a state log (no recovery store) nothing is kept across restarts. With ``writers``,
    each ``Applied`` is also handed to the worker's background writer, and ``snapshot`` waits
    until it is written (``dataflows.background_writes``); the sink step then gets none.
    """

    def __init__(self, active: ActiveRules, resume: LogPosition | None, registry: Registry,
                 log: StateLog | None = None, writers: WorkerWriters | None = None) -> None:
        self.writer: BackgroundWriter | None = None if writers is None else writers.current()
        self.active = active
        self.registry = registry
        self.log = log
        self.shard_log: ShardLog | None = None
        self.skus: dict[str, SkuLogic] = {}
        self.touched: dict[str, None] = {}  # SKUs that ran since the last snapshot
        self.due: int | None = None  # earliest reservation expiry among the shard's SKUs
        if resume is not None:
            if log is None:
                raise ValueError("a snapshot names a state log, but the flow was given none")
            self.shard_log, epochs = log.resume(resume)
            self._restore(epochs)

    def _restore(self, epochs: list[list[SkuRecord]]) -> None:
        held: dict[str, tuple[int, str, list[Change]]] = {}
        for records in epochs:
            for sku, version, generation, change in records:
                changes = held[sku][2] if sku in held else []
                changes.append(change)
                held[sku] = (version, generation, changes)
        for sku, (version, generation, changes) in held.items():
            logic = SkuLogic.resumed(self.active, restore(changes), version, generation, self.registry)
            self.skus[sku] = logic
            self._note_due(logic)

    def on_batch(self, values: list[ShardIncoming]) -> tuple[Iterable[Applied], bool]:
        work: dict[str, list[object]] = {}
        for value in values:
            if isinstance(value, ShardBatch):
                for inbound in value.events:
                    sku = inbound.event.sku
                    queued = work.get(sku)
                    if queued is None:
                        work[sku] = [inbound]
                    else:
                        queued.append(inbound)
            else:  # RulesChanged or Rebuild name their SKUs
                for sku in value.skus:
                    work.setdefault(sku, []).append(value)
        applied = Applied()
        trace = logger.isEnabledFor(logging.DEBUG)  # once per activation: event ids ride along only when logged
        rules = self.active.current()
        for sku, items in work.items():
            logic = self.skus.get(sku)
            if logic is None:
                if not isinstance(items[0], Inbound) and not any(isinstance(i, Inbound) for i in items):
                    continue  # a refresh for a SKU this shard holds no state for
                logic = self.skus[sku] = SkuLogic(self.active, None, self.registry)
            emitted, _ = logic.on_batch(items, trace=trace, counts=applied.counts,  # type: ignore[arg-type]
                                        rules=rules)
            self.touched[sku] = None
            _collect(applied, emitted)
            self._note_due(logic)
        return self._out(applied), StatefulBatchLogic.RETAIN if self.skus else StatefulBatchLogic.DISCARD

    def on_notify(self) -> tuple[Iterable[Applied], bool]:
        now = now_us()
        applied = Applied()
        self.due = None
        for logic in self.skus.values():
            state = logic.state
            if state is not None and state.expiry_due is not None and state.expiry_due <= now:
                emitted, _ = logic.on_notify()
                self.touched[state.sku] = None
                _collect(applied, emitted)
            self._note_due(logic)
        return self._out(applied), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Applied], bool]:
        if self.writer is not None:
            self.writer.drain()
        return (), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return None if self.due is None else _EPOCH + timedelta(microseconds=self.due)

    def snapshot(self) -> LogPosition | None:
        if self.writer is not None:  # before the epoch can commit
            self.writer.drain()
        touched, self.touched = self.touched, {}
        if self.log is None:
            for sku in touched:  # nothing records the changes, so stop tracking them
                state = self.skus[sku].state
                if state is not None:
                    state.pending = PendingChange(whole=True)
            return None
        if self.shard_log is None:
            if not self.skus:
                return None
            self.shard_log = self.log.fresh(shard_of(next(iter(self.skus))))
        if self.shard_log.wants_compaction():
            return self.shard_log.rewrite([logic.take_record(whole=True) for logic in self.skus.values()])
        if touched:
            return self.shard_log.append([self.skus[sku].take_record() for sku in touched])
        return self.shard_log.position

    def _out(self, applied: Applied) -> list[Applied]:
        out = _out(applied)
        if out and self.writer is not None:
            self.writer.submit(applied)
        return out

    def _note_due(self, logic: SkuLogic) -> None:
        state = logic.state
        if state is not None and state.expiry_due is not None and (self.due is None or state.expiry_due < self.due):
            self.due = state.expiry_due


def _collect(applied: Applied, emitted: Iterable[Emitted]) -> None:
    for item in emitted:
        if isinstance(item, SkuWrite):
            applied.writes.append(item)
        elif isinstance(item, ChannelDelta):
            applied.deltas.append(item)
        else:
            applied.letters.append(item)


def _out(applied: Applied) -> list[Applied]:
    return [applied] if applied.writes or applied.deltas or applied.letters or applied.counts else []


def shard_builder(
    active: ActiveRules, registry: Registry, log: StateLog | None, writers: WorkerWriters | None = None,
) -> Callable[[LogPosition | None], ShardLogic]:
    def build(resume: LogPosition | None) -> ShardLogic:
        return ShardLogic(active, resume, registry, log, writers)

    return build
