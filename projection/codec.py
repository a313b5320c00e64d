"""The Redis projection's field encodings (layout in ``projection.keys``): one codec for writer and readers."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime, timedelta

from atp.positions import NodePosition
from atp.rules import RuleSet
from atp.supply import DAY, Arrival

NODE_PREFIX = "n:"
CHANNEL_PREFIX = "c:"
UNSOURCED_PREFIX = "u:"
VERSION = "v"
AS_OF = "a"
RULES_VERSION = "r"
FEED_BACKLOG_PREFIX = "feed_backlog:"  # a field of Keys.stats per channel
SUPPLY = "s"
"""The SKU's open expected supply by node and day (contract section 7), ``encode_arrivals``; absent: none."""


def backlog_field(channel: str) -> str:
    return FEED_BACKLOG_PREFIX + channel


CONSUMER_LAG_PREFIX = "consumer_lag:"  # a field of Keys.stats per Kafka partition: messages not yet read


def consumer_lag_field(topic: str, partition: int) -> str:
    return f"{CONSUMER_LAG_PREFIX}{topic}:{partition}"


def encode_arrivals(arrivals: Iterable[Arrival]) -> str:
    """``node,qty,day`` per node and UTC day of arrival (days since 1970-01-01), ``;``-joined, sorted.

    A schedule needs only an arrival's UTC date (contract section 7), so one node's arrivals
    on one day are summed and times dropped: a hash with a few lines then stays within
    Redis's compact-hash value limit (64 bytes by default; past it the whole hash takes
    about 2.5 times the memory). Ids hold neither mark.
    """
    by_day: dict[tuple[str, int], int] = {}
    for arrival in arrivals:
        key = (arrival.node, arrival.expected_at // DAY)
        by_day[key] = by_day.get(key, 0) + arrival.qty
    return ";".join(f"{node},{qty},{day}" for (node, day), qty in sorted(by_day.items()))


def decode_arrivals(value: str | None) -> list[Arrival]:
    """The arrivals of ``encode_arrivals``, each at the midnight (UTC) that starts its day."""
    if not value:
        return []
    arrivals = []
    for part in value.split(";"):
        node, qty, day = part.split(",")
        arrivals.append(Arrival(node, int(qty), int(day) * DAY))
    return arrivals


def encode_position(position: NodePosition) -> str:
    p = position
    return f"{p.on_hand},{p.reserved},{p.in_transit},{p.unsellable},{p.safety_stock},{p.atp}"


def encode_numbers(numbers: tuple[str, int, int, int, int, int, int]) -> str:
    """``encode_position`` of the tuple ``SkuState.position_numbers`` and ``Net`` hold (the node first)."""
    _, on_hand, reserved, in_transit, unsellable, safety_stock, atp = numbers
    return f"{on_hand},{reserved},{in_transit},{unsellable},{safety_stock},{atp}"


WRITE_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds of the flow's Redis write-time histogram, kept in stats as ``redis_write_le:<bound>``
(one count per write, in its own bucket; ``+Inf`` past the last), ``redis_write_count`` and
``redis_write_us_sum``."""

AGE_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
"""Upper bounds of the freshness histograms, kept in stats as ``<name>_le:<bound>`` per bucket
(their sum is the count) and ``<name>_us_sum``: ``event_age`` (an event's age when the flow applied
it: applied − occurred_at) and ``queryable_age`` (a written SKU's newest event's age when
its write finished: the event-to-queryable time)."""


def bucket_field(name: str, seconds: float, bounds: tuple[float, ...]) -> str:
    """The stats field of the bucket ``seconds`` falls in (``+Inf`` past the last bound)."""
    index = bisect_left(bounds, seconds)
    return f"{name}_le:{bounds[index] if index < len(bounds) else '+Inf'}"


AGE_BOUNDS_US = tuple(round(bound * 1_000_000) for bound in AGE_SECONDS_BUCKETS)


def age_fields(name: str) -> tuple[str, ...]:
    """``bucket_field`` of every age bucket, for ``bisect_left(AGE_BOUNDS_US, age in µs)``: no string per count."""
    return tuple(bucket_field(name, bound, AGE_SECONDS_BUCKETS) for bound in AGE_SECONDS_BUCKETS) + (
        bucket_field(name, float("inf"), AGE_SECONDS_BUCKETS),)


def decode_position(node: str, value: str) -> NodePosition:
    on_hand, reserved, in_transit, unsellable, safety_stock, atp = map(int, value.split(","))
    return NodePosition(node, on_hand, reserved, in_transit, unsellable, safety_stock, atp)


def rules_document(rules: RuleSet) -> dict[str, object]:
    """What the API needs of the active rule set: its version and each channel's nodes."""
    return {
        "version": rules.version,
        "channels": {
            name: {"nodes": sorted(node for node in rules.nodes if name in dict(rules.eligibility(node)))}
            for name in sorted(rules.channels)
        },
    }


_EPOCH_NAIVE = datetime(1970, 1, 1)  # noqa: DTZ001 - naive on purpose: isoformat then adds no offset


_DAYS_FORMATTED: dict[int, str] = {}
_DAYS_REMEMBERED = 4096
_SECONDS_A_DAY = 86_400
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
_THREE_DIGITS = tuple(f".{n:03d}Z" for n in range(1000))


def format_as_of(micros: int | str | None) -> str | None:
    """µs since the epoch as RFC 3339 UTC with milliseconds (``2026-11-23T10:15:00.123Z``)."""
    if micros is None:
        return None
    seconds, fraction = divmod(int(micros), 1_000_000)
    days, second_of_day = divmod(seconds, _SECONDS_A_DAY)
    # Times of a backlog or of a batch answer spread over seconds but share a few days: only the
    # date goes through the calendar, the time of day is digits from tables.
    date = _DAYS_FORMATTED.get(days)
    if date is None:
        if len(_DAYS_FORMATTED) >= _DAYS_REMEMBERED:
            _DAYS_FORMATTED.clear()
        date = _DAYS_FORMATTED[days] = (_EPOCH_NAIVE + timedelta(days=days)).date().isoformat() + "T"
    hours, second_of_hour = divmod(second_of_day, 3600)
    minutes, second = divmod(second_of_hour, 60)
    return (date + _TWO_DIGITS[hours] + ":" + _TWO_DIGITS[minutes] + ":" + _TWO_DIGITS[second]
            + _THREE_DIGITS[fraction // 1000])
