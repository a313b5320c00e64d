"""Typed events to contract JSON (sections 1 and 7), the inverse of ``atp.decoding``.

The one event encoder of the project: the demo retailer, the load generator (through
``event_template``) and the tests all produce events with it, so the field names, the
order (``type`` first, which the decoder reads fastest) and the time format live here.
Times are RFC 3339 UTC with microseconds (``2026-11-23T10:15:00.123456Z``): fixed width,
so their strings sort as the times do.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum

import msgspec

from atp.events import TYPE_NAMES, Event, Micros

TIME_FIELDS = frozenset({"occurred_at", "as_of", "expires_at", "expected_at"})
OPTIONAL = b""
"""An ``event_template`` slot for an optional field: filled with its whole ``,"name":value`` part, or nothing."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_encoder = msgspec.json.Encoder()


def rfc3339(micros: Micros) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}Z"


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {
    kind: tuple((field.name, field.default is None) for field in dataclasses.fields(kind)) for kind in TYPE_NAMES
}


def event_fields(kind: type[Event]) -> tuple[tuple[str, bool], ...]:
    """Each field of an event type in contract order, with whether it is optional."""
    return _FIELDS[kind]


def event_body(event: Event) -> dict[str, object]:
    """The event as its contract JSON object; optional fields that are unset are left out."""
    body: dict[str, object] = {"type": TYPE_NAMES[type(event)]}
    for name, _ in event_fields(type(event)):
        value = getattr(event, name)
        if value is None:
            continue
        if name in TIME_FIELDS:
            value = rfc3339(value)
        elif isinstance(value, Enum):
            value = value.value
        body[name] = value
    return body


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event_body(event))


def event_template(kind: type[Event], slots: Mapping[str, bytes]) -> bytes:
    """A ``%``-template of ``kind``'s contract JSON, for producers that fill many events at once.

    ``slots`` gives each field's value as a ``%`` format with the JSON quoting it needs
    (``b'"%s"'`` for a string, ``b"%d"`` for a number), or ``OPTIONAL``: a ``%s`` that takes
    the field's whole ``,"name":value`` part or nothing. An optional field left out of
    ``slots`` is never written; a required one must be there.
    """
    unknown = set(slots) - {name for name, _ in event_fields(kind)}
    if unknown:
        raise ValueError(f"{kind.__name__} has no field {sorted(unknown)}")
    parts = [b'{"type":"%s"' % TYPE_NAMES[kind].encode()]
    for name, optional in event_fields(kind):
        slot = slots.get(name)
        if slot is None:
            if not optional:
                raise ValueError(f"{kind.__name__}.{name} is required")
            continue
        parts.append(b"%s" if slot == OPTIONAL else b',"%s":%s' % (name.encode(), slot))
    return b"".join(parts) + b"}"
