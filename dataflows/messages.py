"""The items that travel between the flow's steps."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

import orjson
from mypy_extensions import mypyc_attr

from atp.events import Event
from atp.outcomes import Incident
from atp.rejections import Rejection
from atp.values import ByFields


# The items built per event or per SKU spell out their __init__: compiled (mypyc), a written
# __init__ is a C constructor, where a dataclass's generated one stays Python.
@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False)
class RawMessage(ByFields):
    """Where an inbound message came from, kept until it is applied or dead-lettered."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = topic, partition, offset, key, value


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False)
class Inbound(ByFields):
    event: Event
    raw: RawMessage

    def __init__(self, event: Event, raw: RawMessage) -> None:
        self.event, self.raw = event, raw


DEAD_LETTER_VALUE_CAP = 256 * 1024
"""Value bytes a dead letter carries whole: 4× the 64 KiB event limit, far below 1 MB in base64."""
DEAD_LETTER_KEY_CAP = 16 * 1024


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class DeadLetter(ByFields):
    raw: RawMessage
    rejection: Rejection

    def to_json(self) -> bytes:
        """The dead-letter record of contract section 1.

        A value over ``DEAD_LETTER_VALUE_CAP`` keeps only its first bytes (plus its size and
        SHA-256): in base64 the whole of it would pass the broker's message size limit,
        the dead letter could not be written, and the flow would stop on it. The whole
        value stays in the source topic at the partition and offset given.
        """
        raw = self.raw
        record: dict[str, object] = {
            "error": self.rejection.code.value,
            "detail": self.rejection.detail,
            "field": self.rejection.field,
            "topic": raw.topic,
            "partition": raw.partition,
            "offset": raw.offset,
            "key": None if raw.key is None else base64.b64encode(raw.key[:DEAD_LETTER_KEY_CAP]).decode(),
            "value": None,
        }
        value = raw.value
        if value is not None:
            record["value"] = base64.b64encode(value[:DEAD_LETTER_VALUE_CAP]).decode()
            if len(value) > DEAD_LETTER_VALUE_CAP:
                record.update(value_truncated=True, value_size=len(value),
                              value_sha256=hashlib.sha256(value).hexdigest())
        return orjson.dumps(record)


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False)
class SkuWrite(ByFields):
    """One SKU's changed numbers, to be applied to Redis atomically if ``version`` is newer.

    A write that changed nothing still carries ``counts``; it is then not sent as a write.

    ``full`` replaces the SKU's hash entirely (first write after the state was built or
    restored, so nothing written before a crash can linger).
    """

    sku: str
    version: int
    full: bool
    positions: dict[str, str] = field(default_factory=dict)  # node -> encoded position
    channels: dict[str, int] = field(default_factory=dict)
    as_of: int | None = None
    rules_version: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # statistics of the events behind it
    unsourced: dict[str, int] = field(default_factory=dict)  # channel -> reserved at no node (0: gone)
    removed_channels: list[str] = field(default_factory=list)  # no longer in the rules
    rules_changed: bool = False  # written under another rules_version before
    supply: str | None = None  # open expected supply (projection.encode_arrivals): None unchanged, "" none left
    incidents: list[Incident] = field(default_factory=list)  # oversells and phantom sales of the events behind it
    event_ids: tuple[str, ...] = ()  # the applied events behind it, only while DEBUG logs trace them

    def __init__(  # noqa: PLR0913 - the dataclass's fields, spelled out (see RawMessage)
        self, sku: str, version: int, full: bool, positions: dict[str, str] | None = None,  # noqa: FBT001
        channels: dict[str, int] | None = None, as_of: int | None = None, rules_version: str = "",
        counts: dict[str, int] | None = None, unsourced: dict[str, int] | None = None,
        removed_channels: list[str] | None = None, rules_changed: bool = False,  # noqa: FBT001, FBT002
        supply: str | None = None, incidents: list[Incident] | None = None, event_ids: tuple[str, ...] = (),
    ) -> None:
        self.sku, self.version, self.full = sku, version, full
        self.positions = {} if positions is None else positions
        self.channels = {} if channels is None else channels
        self.as_of, self.rules_version = as_of, rules_version
        self.counts = {} if counts is None else counts
        self.unsourced = {} if unsourced is None else unsourced
        self.removed_channels = [] if removed_channels is None else removed_channels
        self.rules_changed, self.supply = rules_changed, supply
        self.incidents = [] if incidents is None else incidents
        self.event_ids = event_ids

    @property
    def changed(self) -> bool:
        return self.full or self.rules_changed or bool(
            self.positions or self.channels or self.unsourced or self.removed_channels
        ) or self.supply is not None


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Counts(ByFields):
    """Counter increments for the engine's statistics hash."""

    values: dict[str, int]


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Heartbeat(ByFields):
    worker: str
    at: int
    lags: tuple[tuple[str, int, int], ...] = ()
    """(topic, partition, consumer lag) of every Kafka partition the worker's process reads."""


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False)  # built per changed channel number: see RawMessage
class ChannelDelta(ByFields):
    """A SKU's new shown quantity for one channel, on its way to the channel's throttle."""

    channel: str
    sku: str
    available: int
    as_of: int | None
    rules_version: str
    event_id: str | None = None  # the newest event that caused it, only while DEBUG logs trace events

    def __init__(self, channel: str, sku: str, available: int, as_of: int | None,  # noqa: PLR0913
                 rules_version: str, event_id: str | None = None) -> None:
        self.channel, self.sku, self.available, self.as_of = channel, sku, available, as_of
        self.rules_version, self.event_id = rules_version, event_id


@mypyc_attr(acyclic=True)
@dataclass(slots=True)  # built per event: a frozen dataclass's __init__ costs about twice as much
class Release(ByFields):
    """A delta the throttle lets through at ``released_at`` (µs), to be published."""

    delta: ChannelDelta
    released_at: int


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Backlog(ByFields):
    """How many SKUs wait in a channel's throttle, after its latest release round."""

    channel: str
    pending: int
    coalesced: int = 0
    """Numbers replaced while waiting (never published), since the previous ``Backlog``."""
    throttled: int = 0
    """Deltas the channel's limits held back when they arrived, since the previous ``Backlog``."""


FeedItem = Release | Backlog
