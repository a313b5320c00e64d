"""Server-Sent Events framing and delta-feed positions (contract §5); pure functions, no I/O.

A delta goes out as one event whose id is its seq, so a client that reconnects sends
the seq it last saw as ``Last-Event-ID``::

    id: 42
    event: delta
    data: {"channel":"web","sku":"TV-55","available":7,"previous":9,...,"seq":42}

Comment lines (``: ...``) say when the stream opens, keep idle connections alive and
say why the server ended a stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from availability_api.errors import InvalidPosition, PositionAhead, PositionTrimmed

KEEPALIVE = b": keepalive\n\n"
LAST_EVENT_ID = "Last-Event-ID"
AFTER = "after"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Response headers of a stream: no caching, and no buffering by nginx-like proxies."""

_SEQ = re.compile(r"^[0-9]{1,19}$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the only line terminators of text/event-stream
_MAX_SEQ = 2**63 - 1


def delta_frame(seq: int, data: str) -> bytes:
    """One delta event; a ``data`` spanning lines (never what the flow writes) gets a data line each."""
    lines = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    return f"id: {seq}\nevent: delta\n{lines}\n".encode()


def comment(text: str) -> bytes:
    """A comment line, ignored by EventSource clients; line breaks in ``text`` become spaces."""
    return f": {_LINE_BREAK.sub(' ', text)}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Position:
    """A requested feed position: deltas with a seq above ``seq``, asked for by ``field``."""

    seq: int
    field: str


def parse_seq(value: str, field: str) -> int:
    """A seq as sent in the events' id; ``InvalidPosition`` naming ``field`` otherwise."""
    if not _SEQ.fullmatch(value) or int(value) > _MAX_SEQ:
        raise InvalidPosition(field)
    return int(value)


def requested_position(last_event_id: str | None, after: str | None) -> Position | None:
    """The position a client asks for; None means "only new deltas". Both values must be well formed.

    ``Last-Event-ID`` wins over ``?after=``: an EventSource reconnects to the URL it
    started with, so ``after`` is where it began and the header is where it got to.
    """
    from_after = Position(parse_seq(after, AFTER), AFTER) if after is not None else None
    if last_event_id is not None:
        return Position(parse_seq(last_event_id.strip(), LAST_EVENT_ID), LAST_EVENT_ID)
    return from_after


@dataclass(frozen=True, slots=True)
class FeedBounds:
    """What a channel's feed holds: the last seq given out and the oldest still retained."""

    last_seq: int
    oldest_seq: int | None
    """None when the stream holds no entry."""

    @property
    def first_available(self) -> int:
        """The smallest seq a client can still be sent (``last_seq + 1`` when nothing is retained)."""
        return self.oldest_seq if self.oldest_seq is not None else self.last_seq + 1


def start_after(position: Position | None, bounds: FeedBounds, channel: str) -> int:
    """The seq to stream after: checked against what the feed holds.

    Raises:
        PositionAhead: the position names a seq not given out yet (422).
        PositionTrimmed: deltas after the position were trimmed away (410): re-bootstrap.
    """
    if position is None:
        return bounds.last_seq
    if position.seq > bounds.last_seq:
        raise PositionAhead(position.field, position.seq, bounds.last_seq)
    if position.seq + 1 < bounds.first_available:
        raise PositionTrimmed(position.field, position.seq, bounds.first_available, channel)
    return position.seq
