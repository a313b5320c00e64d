"""The items that travel between the flow's steps."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson

from atp.events import Event
from atp.rejections import Rejection


@dataclass(frozen=True, slots=True)
class RawMessage:
    """Where an inbound message came from, kept until it is applied or dead-lettered."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Inbound:
    event: Event
    raw: RawMessage


@dataclass(frozen=True, slots=True)
class DeadLetter:
    raw: RawMessage
    rejection: Rejection

    def to_json(self) -> bytes:
        """The dead-letter record of contract section 1."""
        raw = self.raw
        return orjson.dumps({
            "error": self.rejection.code.value,
            "detail": self.rejection.detail,
            "field": self.rejection.field,
            "topic": raw.topic,
            "partition": raw.partition,
            "offset": raw.offset,
            "key": None if raw.key is None else base64.b64encode(raw.key).decode(),
            "value": None if raw.value is None else base64.b64encode(raw.value).decode(),
        })


@dataclass(slots=True)
class SkuWrite:
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

    @property
    def changed(self) -> bool:
        return self.full or self.rules_changed or bool(
            self.positions or self.channels or self.unsourced or self.removed_channels
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """Counter increments for the engine's statistics hash."""

    values: dict[str, int]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    worker: str
    at: int


@dataclass(frozen=True, slots=True)
class ChannelDelta:
    """A SKU's new shown quantity for one channel, on its way to the channel's throttle."""

    channel: str
    sku: str
    available: int
    as_of: int | None
    rules_version: str


@dataclass(frozen=True, slots=True)
class Release:
    """A delta the throttle lets through at ``released_at`` (µs), to be published."""

    delta: ChannelDelta
    released_at: int
