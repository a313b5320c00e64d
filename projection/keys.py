"""The Redis projection's key names, shared by the flow (writer), the API and the commands (readers).

Per SKU, one hash; its hash tag is the SKU's slot group (below)::

    {prefix}:sku:{<group tag>}SKU
                            v  version (µs hybrid clock; a write with a lower one is refused)
                            a  as_of (µs since epoch, newest event time reflected)
                            r  rules_version
                            n:<node>     "on_hand,reserved,in_transit,unsellable,safety_stock,atp"
                            c:<channel>  shown quantity
                            u:<channel>  reserved for the channel at no node yet (rules preview)
                            s  open expected supply, "node,qty,day;…" by UTC day of arrival (absent: none)

Per channel, the delta feed (contract section 5)::

    {prefix}:feed:{CHANNEL}     stream; entry id "<seq>-0"; field d = the delta as JSON
                                {"channel", "sku", "available", "previous", "as_of", "rules_version", "seq"},
                                field t = µs when the throttle released it; trimmed to about
                                AVAIL_FEED_RETENTION entries (oldest first)
    {prefix}:feedseq:{CHANNEL}  integer: the last seq given out (0 or absent: none yet)
    {prefix}:pub:{CHANNEL}      hash sku -> the last published quantity (absent: 0): a delta's
                                ``previous``, and how the feed drops a repeat (the channel snapshot
                                reads the live c:<channel> fields instead)
    {prefix}:feedkafka:{CHANNEL}  the last seq delivered to the channel's Kafka topic; on start the
                                flow re-produces the stream entries after it (a crash between the
                                Redis publish and the Kafka flush loses nothing from the topic)

Engine-wide, all in the slot of the hash tag ``{prefix}`` (a rules change is one transaction)::

    {prefix}:skus           sorted set, every known SKU at score 0 (lexicographic paging)
    {prefix}:rules          JSON of the active rule set as the API needs it (rules_document)
    {prefix}:rules:version  the active rules_version
    {prefix}:rules:source   JSON {"version", "sources": {file: text}}: what every flow process runs
    {prefix}:rules:error    JSON of the last refused change (absent when the newest change loaded)
    {prefix}:stats          hash of counters: applied, duplicate, rejected:<code>,
                            undeclared_node_events, writes; and feed_backlog:<channel>, the SKUs
                            waiting in that channel's throttle after its latest release round;
                            consumer_lag:<topic>:<partition>, messages not yet read (each heartbeat)
    {prefix}:heartbeat      hash worker -> µs of its last heartbeat (about once a second)
    {prefix}:progress       hash applied:<worker> -> µs when that worker last wrote applied events,
                            event:<worker> -> the newest as_of (µs) in that write (staleness)
    {prefix}:generation     random token of this Redis's data; a new or missing one means the data
                            was lost (or `avail rebuild` asked): flow workers rewrite every SKU
    {prefix}:rebuilt        hash <host>:<pid> -> the generation that flow process finished rebuilding for
    {prefix}:incidents      sorted set by occurred_at (µs) of the latest oversells and phantom sales, as JSON
                            (about 1,000 kept); stats counts them: oversells:<channel>,
                            oversold_units:<channel>, phantom_sales:<node type>, phantom_sale_units:<node type>
    {prefix}:incident-ids   sorted set of the event ids recorded (about 100,000 kept): a replay records none twice
    {prefix}:rejects        list of the latest dead letters, newest first, as JSON summaries (100 kept): the
                            operations page's "recent rejects"; the dead-letter topic holds every one whole

(Engine-wide keys are written ``{avail}:rules`` and so on: the braces are the hash tag.)

Slot groups. On a Redis Cluster a script may only touch keys of one slot. A tag per SKU
would make a sink batch of 500 SKUs about 500 script calls; one tag for all would put
every SKU on one master. So each SKU falls (CRC-32 of its name) into one of
``SLOT_GROUPS`` groups whose tags hash to slots spread evenly over the 16,384: a batch is
at most ``SLOT_GROUPS`` calls, and masters holding equal slot ranges (as ``redis-cli
--cluster create`` makes them) hold about equal shares of the SKUs. Sixty-four groups
let the data spread over up to 64 masters; changing the number changes every SKU's key.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

SLOT_GROUPS = 64


def _group_tags() -> tuple[str, ...]:
    """For group g, the first tag ``g.n`` whose slot lies in the g-th 64th of the slot range."""
    span = REDIS_CLUSTER_HASH_SLOTS // SLOT_GROUPS
    tags = []
    for group in range(SLOT_GROUPS):
        n = 0
        while key_slot(f"{group}.{n}".encode()) // span != group:
            n += 1
        tags.append(f"{group}.{n}")
    return tuple(tags)


GROUP_TAGS = _group_tags()


def slot_group(sku: str) -> int:
    return zlib.crc32(sku.encode()) % SLOT_GROUPS


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "avail"
    _sku_heads: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sku_heads", tuple(f"{self.prefix}:sku:{{{tag}}}" for tag in GROUP_TAGS))

    def sku(self, sku: str) -> str:
        return self._sku_heads[zlib.crc32(sku.encode()) % SLOT_GROUPS] + sku

    @property
    def patterns(self) -> tuple[str, ...]:
        """SCAN patterns that together match every key of this engine."""
        return f"{self.prefix}:*", f"{{{self.prefix}}}:*"

    @property
    def sku_prefix(self) -> str:
        """What every SKU key starts with (read-cache invalidations track it)."""
        return f"{self.prefix}:sku:"

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
        return f"{{{self.prefix}}}:skus"

    @property
    def rules(self) -> str:
        return f"{{{self.prefix}}}:rules"

    @property
    def rules_version(self) -> str:
        return f"{{{self.prefix}}}:rules:version"

    @property
    def rules_source(self) -> str:
        return f"{{{self.prefix}}}:rules:source"

    @property
    def rules_error(self) -> str:
        return f"{{{self.prefix}}}:rules:error"

    @property
    def stats(self) -> str:
        return f"{{{self.prefix}}}:stats"

    @property
    def heartbeat(self) -> str:
        return f"{{{self.prefix}}}:heartbeat"

    @property
    def progress(self) -> str:
        return f"{{{self.prefix}}}:progress"

    @property
    def incident_ids(self) -> str:
        return f"{{{self.prefix}}}:incident-ids"

    @property
    def incidents(self) -> str:
        return f"{{{self.prefix}}}:incidents"

    @property
    def rejects(self) -> str:
        return f"{{{self.prefix}}}:rejects"

    @property
    def generation(self) -> str:
        return f"{{{self.prefix}}}:generation"

    @property
    def rebuilt(self) -> str:
        return f"{{{self.prefix}}}:rebuilt"
