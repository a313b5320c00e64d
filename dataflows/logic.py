"""The per-SKU stateful step: ``atp.SkuState`` behind Bytewax's ``StatefulBatchLogic``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from atp.outcomes import Outcome, Status
from atp.rules import RuleSet
from atp.state import SkuState
from avail.projection import encode_position
from dataflows.messages import DeadLetter, Inbound, SkuWrite

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Emitted = SkuWrite | DeadLetter

SkuSnapshot = tuple[bytes, int]
"""What Bytewax stores per SKU: the pickled state and the last version written."""


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class ActiveRules:
    """The rule set every SKU's logic in this process reads; replaced on reload."""

    rules: RuleSet

    def logic(self, resume: SkuSnapshot | None) -> SkuLogic:
        """The Bytewax builder: a SKU's logic, fresh or from its snapshot."""
        return SkuLogic(self, resume)


class SkuLogic(StatefulBatchLogic[Inbound, Emitted, SkuSnapshot]):
    """Applies a batch of one SKU's events and emits one coalesced ``SkuWrite``.

    Versions are a hybrid clock, ``max(last + 1, now µs)``: they rise within a process,
    and after a restart they exceed anything written before it, so the replayed epoch's
    writes land even though Redis already holds pre-crash values.
    """

    def __init__(self, active: ActiveRules, resume: SkuSnapshot | None) -> None:
        self.active = active
        self.state: SkuState | None = None
        self.version = 0
        if resume is not None:
            self.state = SkuState.from_bytes(resume[0])
            self.version = resume[1]
        self.full_write_pending = True

    def on_batch(self, values: list[Inbound]) -> tuple[Iterable[Emitted], bool]:
        now = now_us()
        rules = self.active.rules
        if self.state is None:
            self.state = SkuState(values[0].event.sku)
        state = self.state
        emitted: list[Emitted] = []
        write = SkuWrite(state.sku, 0, False)
        counts = write.counts
        for inbound in values:
            outcome = state.apply(inbound.event, now=now, rules=rules)
            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
            if outcome.status is Status.REJECTED and outcome.rejection is not None:
                emitted.append(DeadLetter(inbound.raw, outcome.rejection))
            if outcome.undeclared_nodes:
                counts["undeclared_node_events"] = counts.get("undeclared_node_events", 0) + 1
            _merge(write, outcome)
        self._finish(write, now, emitted)
        return emitted, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Emitted], bool]:
        if self.state is None:
            return (), StatefulBatchLogic.RETAIN
        now = now_us()
        write = SkuWrite(self.state.sku, 0, False)
        _merge(write, self.state.refresh(now=now, rules=self.active.rules))
        emitted: list[Emitted] = []
        self._finish(write, now, emitted)
        return emitted, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Emitted], bool]:
        return (), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.state is None or self.state.expiry_due is None:
            return None
        return _EPOCH + timedelta(microseconds=self.state.expiry_due)

    def snapshot(self) -> SkuSnapshot:
        assert self.state is not None  # noqa: S101 - Bytewax snapshots only keys that saw items
        return self.state.to_bytes(), self.version

    def _finish(self, write: SkuWrite, now: int, emitted: list[Emitted]) -> None:
        state = self.state
        assert state is not None  # noqa: S101
        if self.full_write_pending:
            write.full = True
            write.positions = {p.node: encode_position(p) for p in state.node_positions()}
            write.channels = {name: state.shown.get(name, 0) for name in self.active.rules.channels}
        if not write.changed:
            if write.counts:
                emitted.append(write)
            return
        self.full_write_pending = False
        self.version = write.version = max(self.version + 1, now)
        write.as_of = state.as_of
        write.rules_version = state.rules_version
        emitted.append(write)


def _merge(write: SkuWrite, outcome: Outcome) -> None:
    for position in outcome.positions:
        write.positions[position.node] = encode_position(position)
    for change in outcome.channels:
        write.channels[change.channel] = change.available
