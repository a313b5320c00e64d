"""Per-SKU state: every node's position, reservations, transfers, expected supply, de-duplication."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from mypy_extensions import mypyc_attr

from atp.events import (
    Adjustment,
    Disposition,
    Event,
    InventorySnapshot,
    Micros,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    SupplyCancelled,
    SupplyExpected,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
    event_time,
)
from atp.outcomes import ChannelChange, Incident, IncidentKind, Outcome, Status
from atp.pending import PendingChange, TransferKey
from atp.positions import NodePosition, Position
from atp.rejections import RejectCode, Rejection
from atp.reservations import Reservation, Transfer
from atp.rules import RuleSet
from atp.supply import ExpectedSupply

HOUR: Micros = 3_600_000_000
_BEFORE_ANY: Micros = -(2**62)
"""The horizon and watermark of a SKU that has seen no event."""
DAY: Micros = 24 * HOUR


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history a SKU keeps.

    ``window``: events and snapshots older than the SKU's newest event time (capped
    at the engine clock) minus ``window`` are rejected as ``outside_window``: their
    ids may be forgotten, so applying them could count a replay twice.
    ``max_event_ids``: past this many remembered ids, the oldest half is forgotten
    and the cut-off moves up to match, so a hot SKU's window shrinks rather than its
    memory grow. ``prune_every``: how far the cut-off must move before history is
    actually pruned (amortises the scan); until then a little more is remembered.
    """

    window: Micros = 7 * DAY
    max_event_ids: int = 200_000
    prune_every: Micros = HOUR


DEFAULT_RETENTION = Retention()


_SNAPSHOT_FORMAT = 3
_BEFORE_SUPPLY = 2  # the format before ``supply``, still read

_Restorable = TypeVar("_Restorable", Position, Reservation, Transfer)


def _restored(kind: type[_Restorable], values: Any) -> _Restorable:
    restored: _Restorable = kind()  # a native class (mypyc) has no bare __new__
    restored.__setstate__(values)
    return restored


class EventResult(NamedTuple):
    """What became of one event of ``apply_many``."""

    status: Status
    rejection: Rejection | None
    touched_undeclared: bool  # it named a node the rules do not declare


PositionNumbers = tuple[str, int, int, int, int, int, int]
"""A position as the flow writes it: node, on_hand, reserved, in_transit, unsellable, safety_stock, atp."""


class Net:
    """What a batch of events changed, in the compact forms the flow writes (``apply_events``).

    ``positions``: each position whose numbers moved; ``channels``: (channel, available,
    previous) of each channel whose number moved; ``rejected``: (index of the event,
    its rejection); ``undeclared_events``: how many events named a node the rules do not declare.
    """

    __slots__ = ("channels", "incidents", "positions", "rejected", "undeclared", "undeclared_events")

    def __init__(self) -> None:
        self.positions: list[PositionNumbers] = []
        self.channels: list[tuple[str, int, int]] = []
        self.incidents: list[Incident] = []
        self.undeclared: list[str] = []
        self.rejected: list[tuple[int, Rejection]] = []
        self.undeclared_events = 0


class _Changes:
    """Collects what one call touched, to report only real differences."""

    __slots__ = ("before", "channels", "incidents", "touched_undeclared", "undeclared")

    def __init__(self) -> None:
        self.before: dict[str, tuple[int, ...] | None] = {}  # Position.numbers() before the first touch
        self.channels: set[str] = set()
        self.undeclared: list[str] = []
        self.touched_undeclared = False  # by the event being applied
        self.incidents: list[Incident] = []


_PERSISTED = (  # ``pending`` describes the last snapshot, not the state
    "sku", "positions", "counted_atp", "reservations", "transfers", "seen",
    "horizon", "watermark", "as_of", "unsourced", "contrib", "shown", "rules_version",
    "expiry_due", "supply",
)


@mypyc_attr(acyclic=True)
class SkuState:
    """All of one SKU's inventory; ``apply`` returns an ``Outcome`` of what changed."""

    __slots__ = (
        "sku", "positions", "reservations", "transfers", "seen", "horizon", "watermark", "as_of", "unsourced",
        "contrib", "shown", "rules_version", "expiry_due", "supply", "pending", "supply_changes",
    )  # ``counted_atp`` lives on the positions

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.positions: dict[str, Position] = {}
        self.reservations: dict[str, Reservation] = {}
        self.transfers: dict[TransferKey, Transfer] = {}
        self.seen: dict[str, Micros] = {}
        self.horizon: Micros = _BEFORE_ANY
        self.watermark: Micros = _BEFORE_ANY
        self.as_of: Micros | None = None
        self.unsourced: dict[str, int] = {}
        self.contrib: dict[str, int] = {}
        self.shown: dict[str, int] = {}
        self.rules_version = ""
        self.expiry_due: Micros | None = None  # no counting reservation expires before this
        self.supply: ExpectedSupply | None = None  # made by the first event that feeds it (section 7)
        self.pending = PendingChange(whole=True)  # what changed since the last ``atp.changes.take_change``
        self.supply_changes = 0  # counts what may move the open supply (lines, ETAs, transfers), not persisted

    # -- commands ---------------------------------------------------------------

    def apply(
        self, event: Event, *, now: Micros, rules: RuleSet,
        retention: Retention = DEFAULT_RETENTION,
    ) -> Outcome:
        changes = _Changes()
        self._sync(rules, now, changes)
        status, rejection = self._apply_one(event, now, rules, retention, changes)
        return self._finish(changes, rules, status, rejection)

    def apply_many(
        self, events: Sequence[Event], *, now: Micros, rules: RuleSet,
        retention: Retention = DEFAULT_RETENTION,
    ) -> tuple[Outcome, list[EventResult]]:
        """Applies ``events`` in order and reports their net change once.

        The state ends exactly as after ``apply`` of each in turn; the outcome lists each
        position and channel whose numbers differ from before the first event (status
        ``APPLIED``), and each event gets its own status and rejection. The channel
        numbers are computed once, not once per event.
        """
        changes = _Changes()
        results: list[EventResult] = []
        for event in events:
            self._sync(rules, now, changes)
            changes.touched_undeclared = False
            status, rejection = self._apply_one(event, now, rules, retention, changes)
            results.append(EventResult(status, rejection, changes.touched_undeclared))
        return self._finish(changes, rules, Status.APPLIED), results

    def apply_events(
        self, events: Sequence[Event], *, now: Micros, rules: RuleSet,
        retention: Retention = DEFAULT_RETENTION,
    ) -> tuple[Net, list[Status]]:
        """``apply_many`` for the flow: the same state, its net change as ``Net`` and each event's status.

        No object per event or per changed position: tuples and the statuses only.
        """
        changes = _Changes()
        statuses: list[Status] = []
        rejected: list[tuple[int, Rejection]] = []
        undeclared_events = 0
        for index, event in enumerate(events):
            self._sync(rules, now, changes)
            changes.touched_undeclared = False
            status, rejection = self._apply_one(event, now, rules, retention, changes)
            statuses.append(status)
            if rejection is not None:
                rejected.append((index, rejection))
            if changes.touched_undeclared:
                undeclared_events += 1
        net = self._settle(changes, rules)
        net.rejected, net.undeclared_events = rejected, undeclared_events
        return net, statuses

    def _apply_one(
        self, event: Event, now: Micros, rules: RuleSet, retention: Retention, changes: _Changes,
    ) -> tuple[Status, Rejection | None]:
        at = event_time(event)
        if event.event_id in self.seen:
            return Status.DUPLICATE, None
        cutoff = max(self.horizon, self.watermark - retention.window)
        if at < cutoff:
            return Status.REJECTED, Rejection(
                RejectCode.OUTSIDE_WINDOW,
                f"event time is older than this SKU's de-duplication window "
                f"(cutoff {cutoff} µs); it cannot be told apart from a replay",
                "as_of" if isinstance(event, InventorySnapshot) else "occurred_at",
            )
        self.seen[event.event_id] = at
        self.pending.event_ids[event.event_id] = at
        _handle(self, event, now, rules, changes)
        if self.as_of is None or at > self.as_of:
            self.as_of = at
        self._advance(at, now, retention)
        return Status.APPLIED, None

    def refresh(self, *, now: Micros, rules: RuleSet) -> Outcome:
        """Bring the numbers up to ``now`` and ``rules`` with no event (timer, reload)."""
        changes = _Changes()
        self._sync(rules, now, changes)
        return self._finish(changes, rules, Status.REFRESHED)

    # -- queries ----------------------------------------------------------------

    def next_expiry(self) -> Micros | None:
        """When the next counting reservation expires, for the dataflow's timer."""
        due = [r.expires_at for r in self.reservations.values() if r.counted and r.expires_at is not None]
        return min(due) if due else None

    def node_positions(self) -> tuple[NodePosition, ...]:
        return tuple(p.view(node) for node, p in sorted(self.positions.items()))

    def position_numbers(self) -> list[PositionNumbers]:
        """``node_positions`` as the flow writes them, sorted by node."""
        return [p.numbers_at(node) for node, p in sorted(self.positions.items())]

    def channels(self) -> dict[str, int]:
        return dict(self.shown)

    def unsourced_reserved(self, channel: str) -> int:
        return self.unsourced.get(channel, 0)

    def _shown_now(self, channel: str, rules: RuleSet, changes: _Changes) -> int | None:
        """The channel's number this moment; None for a channel the rules do not define.

        ``shown`` and ``contrib`` are brought up to date once per call, so within
        ``apply_many`` they lag by the nodes touched so far: those are counted afresh.
        """
        rule = rules.channels.get(channel)
        if rule is None:
            return None
        contrib = self.contrib.get(channel, 0)
        eligibility = rules.eligibility_by_node
        for node in changes.before:
            position = self.positions[node]
            atp, counted = position.atp, position.counted
            if atp != counted:
                for fed, node_buffer in eligibility.get(node, ()):
                    if fed == channel:
                        contrib += max(0, atp - node_buffer) - max(0, counted - node_buffer)
        return rule.shown(contrib - self.unsourced.get(channel, 0))

    @property
    def counted_atp(self) -> dict[str, int]:
        """The atp each node last added to ``contrib`` (held by its ``Position``: no dict per SKU)."""
        return {node: position.counted for node, position in self.positions.items()}

    @counted_atp.setter
    def counted_atp(self, counted: dict[str, int]) -> None:
        for node, atp in counted.items():
            self.positions[node].counted = atp

    # -- serialisation ----------------------------------------------------------

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.flat(), protocol=5)

    def flat(self) -> tuple[Any, ...]:
        """The state as plain tuples, dicts and ints, ready to pickle.

        Nested objects are flattened first: pickle's per-object protocol (a Python
        ``__getstate__`` call per position and reservation) made a 300-node SKU cost
        ~300 µs to serialise.
        """
        return (
            _SNAPSHOT_FORMAT, self.sku,
            {node: p.__getstate__() for node, p in self.positions.items()},
            self.counted_atp,
            {rid: r.__getstate__() for rid, r in self.reservations.items()},
            {key: t.__getstate__() for key, t in self.transfers.items()},
            self.seen, self.horizon, self.watermark, self.as_of, self.unsourced, self.contrib, self.shown,
            self.rules_version, self.expiry_due, None if self.supply is None else self.supply.__getstate__(),
        )

    @staticmethod
    def from_bytes(data: bytes) -> SkuState:
        loaded = pickle.loads(data)  # noqa: S301 - our own snapshots, never user input
        if isinstance(loaded, SkuState):  # written before the flat format
            return loaded
        return SkuState.from_flat(loaded)

    @staticmethod
    def from_flat(loaded: tuple[Any, ...]) -> SkuState:
        if not isinstance(loaded, tuple) or not loaded or loaded[0] not in (_BEFORE_SUPPLY, _SNAPSHOT_FORMAT):
            raise TypeError(f"not a SkuState snapshot: {type(loaded).__name__}")
        if loaded[0] == _BEFORE_SUPPLY:
            loaded = (*loaded, None)
        (_, sku, positions, counted_atp, reservations, transfers, seen, horizon, watermark, as_of, unsourced,
         contrib, shown, rules_version, expiry_due, supply) = loaded
        state = SkuState(sku)
        state.positions = {shared_node_id(node): _restored(Position, values) for node, values in positions.items()}
        state.counted_atp = counted_atp
        state.reservations = {rid: _restored(Reservation, values) for rid, values in reservations.items()}
        state.transfers = {key: _restored(Transfer, values) for key, values in transfers.items()}
        state.seen, state.horizon, state.watermark, state.as_of = seen, horizon, watermark, as_of
        state.unsourced, state.contrib, state.shown = unsourced, contrib, shown
        state.rules_version, state.expiry_due = rules_version, expiry_due
        state.supply = None if supply is None else _restored_supply(supply)
        state.pending = PendingChange(whole=False)
        return state

    def __reduce__(self) -> tuple[Callable[[tuple[Any, ...]], SkuState], tuple[tuple[Any, ...]]]:
        return _from_flat, (self.flat(),)  # compiled, the class has no slots for pickle's default

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _PERSISTED)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        if len(state) == len(_PERSISTED) - 1:  # pickled before ``supply``
            state = (*state, None)
        for name, value in zip(_PERSISTED, state, strict=True):
            setattr(self, name, value)
        self.pending = PendingChange(whole=True)
        self.supply_changes = 0

    # -- internals --------------------------------------------------------------

    def _position(self, node: str, rules: RuleSet, changes: _Changes) -> Position:
        position = self.positions.get(node)
        if position is None:
            node = shared_node_id(node)
            changes.before[node] = None
            position = self.positions[node] = Position(rules.safety_stock(self.sku, node))
            self.pending.journal_marks[node] = 0
        elif node not in changes.before:
            changes.before[node] = position.numbers()
            marks = self.pending.journal_marks
            if node not in marks:
                marks[node] = len(position.journal)
        if node not in rules.nodes:  # inline: this runs for every event
            _note_undeclared(node, changes)
        return position

    def _expected_supply(self) -> ExpectedSupply:
        self.supply_changes += 1
        if self.supply is None:
            self.supply = ExpectedSupply()
        return self.supply

    def _sync(self, rules: RuleSet, now: Micros, changes: _Changes) -> None:
        if rules.version != self.rules_version:
            self._rebase(rules, changes)
        if self.expiry_due is not None and now >= self.expiry_due:
            for reservation_id, reservation in self.reservations.items():
                if reservation.counted and reservation.expires_at is not None and now >= reservation.expires_at:
                    self.pending.reservations[reservation_id] = None
                    self._recount(reservation, now, rules, changes)
            self.expiry_due = self.next_expiry()

    def _rebase(self, rules: RuleSet, changes: _Changes) -> None:
        self.pending.whole = True  # every node's counted atp moves
        for node, position in self.positions.items():
            safety_stock = rules.safety_stock(self.sku, node)
            if safety_stock != position.safety_stock:
                self._position(node, rules, changes).safety_stock = safety_stock
        self.contrib = dict.fromkeys(rules.channels, 0)
        for node, position in self.positions.items():
            atp = position.counted = position.atp
            for channel, node_buffer in rules.eligibility(node):
                self.contrib[channel] += max(0, atp - node_buffer)
        for channel in self.shown.keys() - rules.channels.keys():
            changes.channels.add(channel)
        changes.channels.update(rules.channels)
        self.rules_version = rules.version

    def _recount(self, reservation: Reservation, now: Micros, rules: RuleSet, changes: _Changes) -> None:
        self._move_reserved(reservation, reservation.quantity_due(now), rules, changes)

    def _move_reserved(self, reservation: Reservation, want: int, rules: RuleSet, changes: _Changes) -> None:
        delta = want - reservation.counted
        if not delta:
            return
        reservation.counted = want
        if want and reservation.expires_at is not None and (
            self.expiry_due is None or reservation.expires_at < self.expiry_due
        ):
            self.expiry_due = reservation.expires_at
        if reservation.node is not None:
            self._position(reservation.node, rules, changes).reserved += delta
        else:
            self.unsourced[reservation.channel] = self.unsourced.get(reservation.channel, 0) + delta
            changes.channels.add(reservation.channel)

    def _reservation(self, reservation_id: str, at: Micros) -> Reservation:
        self.pending.reservations[reservation_id] = None
        reservation = self.reservations.get(reservation_id)
        if reservation is None:
            reservation = self.reservations[reservation_id] = Reservation()
            reservation.last_at = at
        elif at > reservation.last_at:
            reservation.last_at = at
        return reservation

    def _transfer(self, event: TransferShipped | TransferReceived | TransferCancelled) -> Transfer:
        key = (event.transfer_id, event.from_node, event.to_node)
        self.pending.transfers[key] = None
        self.supply_changes += 1  # its balance is a dated transfer's qty in transit
        transfer = self.transfers.get(key)
        if transfer is None:
            transfer = self.transfers[key] = Transfer()
        transfer.last_at = max(transfer.last_at, event.occurred_at)
        return transfer

    def _recount_transfer(self, transfer: Transfer, to_node: str, rules: RuleSet, changes: _Changes) -> None:
        want = max(0, transfer.balance)
        if want != transfer.counted:
            self._position(to_node, rules, changes).in_transit += want - transfer.counted
            transfer.counted = want

    def _advance(self, at: Micros, now: Micros, retention: Retention) -> None:
        mark = min(at, now)
        if mark > self.watermark:
            self.watermark = mark
        target = self.watermark - retention.window
        if target - self.horizon >= retention.prune_every or len(self.seen) > retention.max_event_ids:
            if self.horizon == _BEFORE_ANY and len(self.seen) == 1:
                # A SKU's first event: all it holds is that event's, no older than target, so
                # the prune would forget nothing; only the horizon moves (most SKUs of a
                # backlog pass here once).
                self.horizon = target
                self.pending.pruned = True
            else:
                self._prune(max(self.horizon, target), now, retention)

    def _prune(self, horizon: Micros, now: Micros, retention: Retention) -> None:
        if len(self.seen) > retention.max_event_ids:
            times = sorted(self.seen.values())
            horizon = max(horizon, times[len(times) - retention.max_event_ids // 2])
            if sum(1 for t in times if t >= horizon) > retention.max_event_ids:
                horizon += 1  # many ids share one time: drop that time too
        pending = self.pending
        pending.pruned = True
        self.horizon = horizon
        self.seen = {event_id: at for event_id, at in self.seen.items() if at >= horizon}
        for node, position in self.positions.items():
            if position.fold_before(horizon):
                pending.journal_marks[node] = 0
        reservations = {}
        for rid, r in self.reservations.items():
            if r.last_at >= horizon or r.counted or not r.is_settled(now):
                reservations[rid] = r
            else:
                pending.reservations.pop(rid, None)
                pending.dropped_reservations[rid] = None
        self.reservations = reservations
        transfers = {}
        for key, t in self.transfers.items():
            if t.last_at >= horizon or t.balance > 0:
                transfers[key] = t
            else:
                pending.transfers.pop(key, None)
                pending.dropped_transfers[key] = None
        self.transfers = transfers
        if self.supply is not None:
            self._prune_supply(self.supply, horizon, pending)

    def _prune_supply(self, supply: ExpectedSupply, horizon: Micros, pending: PendingChange) -> None:
        lines, etas = supply.lines, supply.etas
        if not supply.prune(horizon, self.transfers):
            return
        self.supply_changes += 1
        for supply_id in lines:
            if supply_id not in supply.lines:
                pending.supply_lines.pop(supply_id, None)
                pending.dropped_lines[supply_id] = None
        for key in etas:
            if key not in supply.etas:
                pending.supply_etas.pop(key, None)
                pending.dropped_etas[key] = None

    def _finish(
        self, changes: _Changes, rules: RuleSet, status: Status, rejection: Rejection | None = None,
    ) -> Outcome:
        net = self._settle(changes, rules)
        return Outcome(
            self.sku, status, tuple(NodePosition(*numbers) for numbers in net.positions),
            tuple(ChannelChange(*change) for change in net.channels), self.as_of,
            self.rules_version, rejection, tuple(net.undeclared), tuple(net.incidents),
        )

    def _settle(self, changes: _Changes, rules: RuleSet) -> Net:
        """Brings ``counted_atp``, ``contrib`` and ``shown`` up to date with what ``changes`` touched."""
        net = Net()
        changed_positions = net.positions
        contrib = self.contrib
        eligibility = rules.eligibility_by_node  # a dict: no call into the rules' Python per node
        for node, before in changes.before.items():
            position = self.positions[node]
            atp = position.atp
            counted = position.counted
            if atp != counted:
                position.counted = atp
                for channel, node_buffer in eligibility.get(node, ()):
                    contrib[channel] += max(0, atp - node_buffer) - max(0, counted - node_buffer)
                    changes.channels.add(channel)
            if position.numbers() != before:  # a tuple: building every view costs more than the comparison
                changed_positions.append(position.numbers_at(node))
        channel_changes = net.channels
        for name in sorted(changes.channels):
            previous = self.shown.get(name, 0)
            rule = rules.channels.get(name)
            if rule is None:
                self.shown.pop(name, None)
                available = 0
            else:
                available = self.shown[name] = rule.shown(contrib[name] - self.unsourced.get(name, 0))
            if available != previous:
                channel_changes.append((name, available, previous))
        net.incidents, net.undeclared = changes.incidents, changes.undeclared
        return net


_NODE_IDS: dict[str, str] = {}


def shared_node_id(node: str) -> str:
    """One string per node id across SKUs: each decoded event brings its own copy (58 B a position)."""
    return _NODE_IDS.setdefault(node, node)


def _from_flat(flat: tuple[Any, ...]) -> SkuState:
    return SkuState.from_flat(flat)


def _restored_supply(values: Any) -> ExpectedSupply:
    supply = ExpectedSupply()
    supply.__setstate__(values)
    return supply


def _note_undeclared(node: str, changes: _Changes) -> None:
    changes.touched_undeclared = True
    if node not in changes.undeclared:
        changes.undeclared.append(node)


# -- one handler per event type -------------------------------------------------


_Counted = Sale | SaleVoid


def _sale(state: SkuState, event: Sale, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    position = state._position(event.node, rules, changes)
    before = position.on_hand
    position.add_on_hand(-event.qty, event.occurred_at)
    _phantom_sale(state, event, event.node, before, position.on_hand, rules, changes)


def _sale_void(state: SkuState, event: SaleVoid, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    state._position(event.node, rules, changes).add_on_hand(event.qty, event.occurred_at)


def _phantom_sale(state: SkuState, event: _Counted | Pick, node: str, before: int, after: int, rules: RuleSet,
                  changes: _Changes) -> None:
    """Stock sold that the system did not know about: on_hand left below 0, and lower than it was."""
    if after < 0 and after < before:
        declared = rules.nodes.get(node)
        changes.incidents.append(Incident(
            IncidentKind.PHANTOM_SALE, state.sku, event.event_id, event.qty, before, min(event.qty, -after),
            event.occurred_at, node=node, node_type=declared.type if declared is not None else None,
        ))


def _receipt(state: SkuState, event: Receipt, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    state._position(event.node, rules, changes).add_on_hand(event.qty, event.occurred_at)
    if event.reference is not None:  # it may receive an expected-supply line (section 7)
        state._expected_supply().receive(event)
        state.pending.supply_lines[event.reference] = None


def _adjustment(state: SkuState, event: Adjustment, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    state._position(event.node, rules, changes).add_on_hand(event.qty, event.occurred_at)


def _return(state: SkuState, event: Return, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    position = state._position(event.node, rules, changes)
    if event.disposition is Disposition.RESTOCK:
        position.add_on_hand(event.qty, event.occurred_at)
    else:
        position.unsellable += event.qty


def _snapshot(state: SkuState, event: InventorySnapshot, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    if state._position(event.node, rules, changes).count(event.on_hand, event.as_of):
        state.pending.journal_marks[event.node] = 0  # the journal was rewritten, not appended to


def _reserve(state: SkuState, event: Reserve, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    reservation = state._reservation(event.reservation_id, event.occurred_at)
    if not reservation.restates(event.occurred_at, event.event_id):
        return
    before = state._shown_now(event.channel, rules, changes)
    state._move_reserved(reservation, 0, rules, changes)
    reservation.reserve_at = event.occurred_at
    reservation.reserve_event = event.event_id
    reservation.qty = event.qty
    reservation.channel = event.channel
    reservation.node = event.node
    reservation.expires_at = event.expires_at
    state._recount(reservation, now, rules, changes)
    if before is not None and reservation.counted and event.qty > before:  # it took effect, beyond what was shown
        changes.incidents.append(Incident(
            IncidentKind.OVERSELL, state.sku, event.event_id, event.qty, before, event.qty - before,
            event.occurred_at, channel=event.channel, node=event.node,
        ))


def _release(state: SkuState, event: Release, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    reservation = state._reservation(event.reservation_id, event.occurred_at)
    reservation.released = True
    state._recount(reservation, now, rules, changes)


def _pick(state: SkuState, event: Pick, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    position = state._position(event.node, rules, changes)
    before = position.on_hand
    position.add_on_hand(-event.qty, event.occurred_at)
    _phantom_sale(state, event, event.node, before, position.on_hand, rules, changes)
    if event.reservation_id is not None:
        reservation = state._reservation(event.reservation_id, event.occurred_at)
        reservation.picked += event.qty
        state._recount(reservation, now, rules, changes)


def _shipped(state: SkuState, event: TransferShipped, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    state._position(event.from_node, rules, changes).add_on_hand(-event.qty, event.occurred_at)
    transfer = state._transfer(event)
    transfer.shipped += event.qty
    state._recount_transfer(transfer, event.to_node, rules, changes)
    if event.expected_at is not None:  # the transfer's in-transit qty is expected supply (section 7)
        state._expected_supply().ship(event)
        state.pending.supply_etas[(event.transfer_id, event.from_node, event.to_node)] = None


def _received(state: SkuState, event: TransferReceived, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    state._position(event.to_node, rules, changes).add_on_hand(event.qty, event.occurred_at)
    transfer = state._transfer(event)
    transfer.received += event.qty
    state._recount_transfer(transfer, event.to_node, rules, changes)


def _cancelled(state: SkuState, event: TransferCancelled, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    state._position(event.from_node, rules, changes).add_on_hand(event.qty, event.occurred_at)
    transfer = state._transfer(event)
    transfer.cancelled += event.qty
    state._recount_transfer(transfer, event.to_node, rules, changes)


def _supply(state: SkuState, event: SupplyExpected | SupplyCancelled, now: Micros, rules: RuleSet,
            changes: _Changes) -> None:
    state._expected_supply().apply(event)
    state.pending.supply_lines[event.supply_id] = None
    if isinstance(event, SupplyExpected) and event.node not in rules.nodes:
        _note_undeclared(event.node, changes)


def _handle(state: SkuState, event: Event, now: Micros, rules: RuleSet, changes: _Changes) -> None:
    """Each type to its handler, the common ones first.

    Compiled, each is a direct call: a dict of handlers made each one a call through Python's
    calling convention.
    """
    if isinstance(event, Sale):
        _sale(state, event, now, rules, changes)
    elif isinstance(event, InventorySnapshot):
        _snapshot(state, event, now, rules, changes)
    elif isinstance(event, Reserve):
        _reserve(state, event, now, rules, changes)
    elif isinstance(event, Pick):
        _pick(state, event, now, rules, changes)
    elif isinstance(event, Release):
        _release(state, event, now, rules, changes)
    elif isinstance(event, Receipt):
        _receipt(state, event, now, rules, changes)
    elif isinstance(event, Return):
        _return(state, event, now, rules, changes)
    elif isinstance(event, Adjustment):
        _adjustment(state, event, now, rules, changes)
    elif isinstance(event, TransferShipped):
        _shipped(state, event, now, rules, changes)
    elif isinstance(event, TransferReceived):
        _received(state, event, now, rules, changes)
    elif isinstance(event, TransferCancelled):
        _cancelled(state, event, now, rules, changes)
    elif isinstance(event, SaleVoid):
        _sale_void(state, event, now, rules, changes)
    else:
        _supply(state, event, now, rules, changes)


def replay(sku: str, events: Iterable[Event], *, now: Micros, rules: RuleSet) -> SkuState:
    """A fresh state with ``events`` applied in order (tests, rebuilds)."""
    state = SkuState(sku)
    for event in events:
        state.apply(event, now=now, rules=rules)
    return state
