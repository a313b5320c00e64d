"""The Redis projection: key names and field encodings, shared by writer and readers.

Per SKU, one hash (the hash tag keeps it in one Redis Cluster slot)::

    {prefix}:sku:{SKU}      v  version (µs hybrid clock; a write with a lower one is refused)
                            a  as_of (µs since epoch, newest event time reflected)
                            r  rules_version
                            n:<node>     "on_hand,reserved,in_transit,unsellable,safety_stock,atp"
                            c:<channel>  shown quantity
                            u:<channel>  reserved for the channel at no node yet (rules preview)

Per channel, the delta feed (contract section 5)::

    {prefix}:feed:{CHANNEL}     stream; entry id "<seq>-0"; field d = the delta as JSON
                                {"channel", "sku", "available", "previous", "as_of", "rules_version", "seq"},
                                field t = µs when the throttle released it; trimmed to about
                                AVAIL_FEED_RETENTION entries (oldest first)
    {prefix}:feedseq:{CHANNEL}  integer: the last seq given out (0 or absent: none yet)
    {prefix}:pub:{CHANNEL}      hash sku -> the last published quantity (absent: 0); the channel
                                snapshot reads this, so snapshot + feed from its cursor is exact
    {prefix}:feedkafka:{CHANNEL}  the last seq delivered to the channel's Kafka topic; on start the
                                flow re-produces the stream entries after it (a crash between the
                                Redis publish and the Kafka flush loses nothing from the topic)

Engine-wide::

    {prefix}:skus           sorted set, every known SKU at score 0 (lexicographic paging)
    {prefix}:rules          JSON of the active rule set as the API needs it (rules_document)
    {prefix}:rules:version  the active rules_version
    {prefix}:rules:source   JSON {"version", "sources": {file: text}}: what every flow process runs
    {prefix}:rules:error    JSON of the last refused change (absent when the newest change loaded)
    {prefix}:stats          hash of counters: applied, duplicate, rejected:<code>,
                            undeclared_node_events, writes
    {prefix}:heartbeat      hash worker -> µs of its last heartbeat (about once a second)
    {prefix}:progress       hash applied:<worker> -> µs when that worker last wrote applied events,
                            event:<worker> -> the newest as_of (µs) in that write (staleness)
    {prefix}:generation     random token of this Redis's data; a new or missing one means the data
                            was lost (or `avail rebuild` asked): flow workers rewrite every SKU
    {prefix}:rebuilt        hash <host>:<pid> -> the generation that flow process finished rebuilding for
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from atp.positions import NodePosition
from atp.rules import RuleSet

NODE_PREFIX = "n:"
CHANNEL_PREFIX = "c:"
UNSOURCED_PREFIX = "u:"
VERSION = "v"
AS_OF = "a"
RULES_VERSION = "r"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "avail"

    def sku(self, sku: str) -> str:
        return f"{self.prefix}:sku:{{{sku}}}"

    def feed(self, channel: str) -> str:
        return f"{self.prefix}:feed:{{{channel}}}"

    def feed_seq(self, channel: str) -> str:
        return f"{self.prefix}:feedseq:{{{channel}}}"

    def feed_kafka(self, channel: str) -> str:
        return f"{self.prefix}:feedkafka:{{{channel}}}"

    def published(self, channel: str) -> str:
        return f"{self.prefix}:pub:{{{channel}}}"

    @property
    def skus(self) -> str:
        return f"{self.prefix}:skus"

    @property
    def rules(self) -> str:
        return f"{self.prefix}:rules"

    @property
    def rules_version(self) -> str:
        return f"{self.prefix}:rules:version"

    @property
    def rules_source(self) -> str:
        return f"{self.prefix}:rules:source"

    @property
    def rules_error(self) -> str:
        return f"{self.prefix}:rules:error"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def heartbeat(self) -> str:
        return f"{self.prefix}:heartbeat"

    @property
    def progress(self) -> str:
        return f"{self.prefix}:progress"

    @property
    def generation(self) -> str:
        return f"{self.prefix}:generation"

    @property
    def rebuilt(self) -> str:
        return f"{self.prefix}:rebuilt"


def encode_position(position: NodePosition) -> str:
    p = position
    return f"{p.on_hand},{p.reserved},{p.in_transit},{p.unsellable},{p.safety_stock},{p.atp}"


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


_SECONDS_FORMATTED: dict[int, str] = {}
_SECONDS_REMEMBERED = 4096


def format_as_of(micros: int | str | None) -> str | None:
    """µs since the epoch as RFC 3339 UTC with milliseconds (``2026-11-23T10:15:00.123Z``)."""
    if micros is None:
        return None
    seconds, fraction = divmod(int(micros), 1_000_000)
    # Answers rendered together mostly share their second: the date and time are formatted once per second.
    formatted = _SECONDS_FORMATTED.get(seconds)
    if formatted is None:
        if len(_SECONDS_FORMATTED) >= _SECONDS_REMEMBERED:
            _SECONDS_FORMATTED.clear()
        formatted = _SECONDS_FORMATTED[seconds] = (_EPOCH_NAIVE + timedelta(seconds=seconds)).isoformat()
    return f"{formatted}.{fraction // 1000:03d}Z"
