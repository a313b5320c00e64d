"""The per-SKU stateful step: ``atp.SkuState`` behind Bytewax's ``StatefulBatchLogic``."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from atp.changes import take_change
from atp.events import TYPE_NAMES, event_time
from atp.outcomes import Outcome, Status
from atp.rules import RuleSet
from atp.state import Net, SkuState
from dataflows.messages import ChannelDelta, DeadLetter, Inbound, SkuWrite
from dataflows.rules_reload import ActiveRules, RulesChanged
from dataflows.state_log import SkuRecord
from dataflows.store_guard import Rebuild, Registry
from projection import encode_arrivals, encode_position
from projection.codec import AGE_BOUNDS_US, age_fields, encode_numbers

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Emitted = SkuWrite | DeadLetter | ChannelDelta
Incoming = Inbound | RulesChanged | Rebuild

SkuSnapshot = tuple[bytes, int, str] | tuple[bytes, int]
"""What Bytewax stores per SKU: the pickled state, the last version written, and the
Redis data generation of its last whole write (``store_guard``; absent from older snapshots)."""


def now_us() -> int:
    return time.time_ns() // 1000


def builder(active: ActiveRules, registry: Registry | None = None) -> Callable[[SkuSnapshot | None], SkuLogic]:
    registry = registry if registry is not None else Registry()

    def build(resume: SkuSnapshot | None) -> SkuLogic:
        return SkuLogic(active, resume, registry)

    return build


class SkuLogic(StatefulBatchLogic[Incoming, Emitted, SkuSnapshot]):
    """Applies a batch of one SKU's events and emits one coalesced ``SkuWrite``.

    Versions are a hybrid clock, ``max(last + 1, now µs)``: they rise within a process,
    and after a restart they exceed anything written before it, so the replayed epoch's
    writes land even though Redis already holds pre-crash values.
    """

    def __init__(self, active: ActiveRules, resume: SkuSnapshot | None, registry: Registry) -> None:
        self.active = active
        self.registry = registry
        self.state: SkuState | None = None
        self.version = 0
        self.written_generation = ""
        if resume is not None:
            self.state = SkuState.from_bytes(resume[0])
            self.version = resume[1]
            self.written_generation = resume[2] if len(resume) > 2 else ""  # noqa: PLR2004
            registry.add(self.state.sku, self)
        self.full_write_pending = True
        self.written_rules_version = ""
        self.written_unsourced: dict[str, int] = {}
        self.written_channels: set[str] = set()
        self.written_supply = ""  # encode_arrivals of the SKU's open supply, as last written
        self.written_supply_changes = -1  # the state's supply_changes when written_supply was computed

    @classmethod
    def resumed(cls, active: ActiveRules, state: SkuState, version: int, generation: str,
                registry: Registry) -> SkuLogic:
        logic = cls(active, None, registry)
        logic.state, logic.version, logic.written_generation = state, version, generation
        registry.add(state.sku, logic)
        return logic

    def on_batch(self, values: list[Incoming], *, trace: bool = False,
                 counts: dict[str, int] | None = None, rules: RuleSet | None = None) -> tuple[Iterable[Emitted], bool]:
        """``trace``: keep the applied events' ids on the write and its deltas, for DEBUG logs downstream.

        ``counts``: where the events' statistics add up (a shard sums one activation's in one
        dict); by default in the write's own ``counts``. ``rules``: the current rules, when the
        caller already asked (a shard asks once per activation, not once per SKU).
        """
        now = now_us()
        if rules is None:
            rules = self.active.current()
        inbound: list[Inbound] = []
        refresh = False
        for value in values:
            if isinstance(value, Inbound):
                inbound.append(value)
            elif isinstance(value, RulesChanged):
                rules = self.active.ensure(value.version)
                refresh = True
            else:
                self.full_write_pending = True
        if self.state is None:
            if not inbound:  # a refresh for a SKU this worker holds no state for
                return (), StatefulBatchLogic.DISCARD
            self.state = SkuState(inbound[0].event.sku)
            self.registry.add(self.state.sku, self)
        state = self.state
        emitted: list[Emitted] = []
        write = SkuWrite(state.sku, 0, False)
        if counts is None:
            counts = write.counts
        if inbound:
            net, statuses = state.apply_events([item.event for item in inbound], now=now, rules=rules)
            age_sum = applied = 0
            for item, status in zip(inbound, statuses, strict=True):
                if status is not _APPLIED:
                    field = status.value  # Enum.value is a Python property
                    counts[field] = counts.get(field, 0) + 1
                else:
                    applied += 1
                    event = item.event
                    kind = (item.raw.topic, type(event))
                    by_kind = _KIND_FIELDS.get(kind) or _kind_field(kind)
                    counts[by_kind] = counts.get(by_kind, 0) + 1
                    age_us = max(0, now - event_time(event))
                    bucket = _AGE_FIELDS[bisect_left(AGE_BOUNDS_US, age_us)]
                    counts[bucket] = counts.get(bucket, 0) + 1
                    age_sum += age_us
            for index, rejection in net.rejected:
                emitted.append(DeadLetter(inbound[index].raw, rejection))
            if net.undeclared_events:
                counts["undeclared_node_events"] = counts.get("undeclared_node_events", 0) + net.undeclared_events
            if applied:
                counts[_APPLIED_FIELD] = counts.get(_APPLIED_FIELD, 0) + applied
            if age_sum:
                counts["event_age_us_sum"] = counts.get("event_age_us_sum", 0) + age_sum
            if trace:
                write.event_ids = tuple(item.event.event_id for item, status in zip(inbound, statuses, strict=True)
                                        if status is Status.APPLIED)
            _merge_net(write, net, rules)
        if refresh:
            _merge(write, state.refresh(now=now, rules=rules), rules)
        self._finish(write, now, rules, emitted)
        return emitted, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Emitted], bool]:
        if self.state is None:
            return (), StatefulBatchLogic.RETAIN
        now = now_us()
        rules = self.active.current()
        write = SkuWrite(self.state.sku, 0, False)
        _merge(write, self.state.refresh(now=now, rules=rules), rules)
        emitted: list[Emitted] = []
        self._finish(write, now, rules, emitted)
        return emitted, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Emitted], bool]:
        return (), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.state is None or self.state.expiry_due is None:
            return None
        return _EPOCH + timedelta(microseconds=self.state.expiry_due)

    def snapshot(self) -> SkuSnapshot:
        assert self.state is not None  # noqa: S101 - logic without state is discarded, never snapshotted
        return self.state.to_bytes(), self.version, self.written_generation

    def take_record(self, *, whole: bool = False) -> SkuRecord:
        """What the SKU changed since the last record, for the shard's state log."""
        assert self.state is not None  # noqa: S101
        return self.state.sku, self.version, self.written_generation, take_change(self.state, whole=whole)

    def _finish(self, write: SkuWrite, now: int, rules: RuleSet, emitted: list[Emitted]) -> None:
        state = self.state
        assert state is not None  # noqa: S101
        rules_changed = state.rules_version != self.written_rules_version
        if self.full_write_pending:
            write.full = True
            self.written_generation = self.registry.generation
            write.positions = {numbers[0]: encode_numbers(numbers) for numbers in state.position_numbers()}
            write.channels = {name: state.shown.get(name, 0) for name in rules.channels}
        elif rules_changed:  # the set of channels only changes with the rules
            write.removed_channels = sorted(self.written_channels - rules.channels.keys())
            for name in rules.channels.keys() - self.written_channels:  # a channel the rules just added
                write.channels.setdefault(name, state.shown.get(name, 0))
        if state.unsourced or self.written_unsourced:
            unsourced = {channel: qty for channel, qty in state.unsourced.items() if qty}
            write.unsourced = {c: unsourced.get(c, 0) for c in unsourced.keys() | self.written_unsourced.keys()
                               if write.full or unsourced.get(c, 0) != self.written_unsourced.get(c, 0)}
        else:
            unsourced = {}
        if state.supply_changes != self.written_supply_changes:  # else the arrivals are those last written
            supply = state.supply
            arrivals = encode_arrivals(supply.arrivals(state.transfers)) if supply else ""
        else:
            arrivals = self.written_supply
        if write.full or arrivals != self.written_supply:
            write.supply = arrivals
        write.rules_changed = rules_changed
        if not write.changed:
            if write.counts or write.incidents:
                emitted.append(write)
            return
        self.full_write_pending = False
        self.written_rules_version = state.rules_version
        self.written_unsourced = unsourced
        self.written_supply = arrivals
        self.written_supply_changes = state.supply_changes
        if write.full or rules_changed:
            self.written_channels = (self.written_channels | write.channels.keys()) - set(write.removed_channels)
        self.version = write.version = max(self.version + 1, now)
        write.as_of = state.as_of
        write.rules_version = state.rules_version
        emitted.append(write)
        cause = write.event_ids[-1] if write.event_ids else None
        for channel, shown in write.channels.items():  # the feed drops values already published
            emitted.append(ChannelDelta(channel, state.sku, shown, state.as_of, state.rules_version, cause))


_APPLIED = Status.APPLIED
_APPLIED_FIELD = Status.APPLIED.value

APPLIED_BY_KIND = "applied_by:"
"""Stats field prefix: events applied, by ``<topic>:<event type>``."""
_KIND_FIELDS: dict[tuple[str, type], str] = {}
_AGE_FIELDS = age_fields("event_age")
"""The stats field of each bucket of an applied event's age, by ``bisect_left(AGE_BOUNDS_US, age)``."""


def _kind_field(kind: tuple[str, type]) -> str:
    field = _KIND_FIELDS[kind] = f"{APPLIED_BY_KIND}{kind[0]}:{TYPE_NAMES[kind[1]]}"
    return field


def _merge_net(write: SkuWrite, net: Net, rules: RuleSet) -> None:
    write.incidents.extend(net.incidents)
    positions = write.positions
    for numbers in net.positions:
        positions[numbers[0]] = encode_numbers(numbers)
    channels = rules.channels
    for channel, available, _ in net.channels:
        if channel in channels:  # a removed channel is deleted in _finish
            write.channels[channel] = available


def _merge(write: SkuWrite, outcome: Outcome, rules: RuleSet) -> None:
    write.incidents.extend(outcome.incidents)
    for position in outcome.positions:
        write.positions[position.node] = encode_position(position)
    for change in outcome.channels:
        if change.channel in rules.channels:  # a removed channel is deleted in _finish
            write.channels[change.channel] = change.available
