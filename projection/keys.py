"""The Redis projection's key names, shared by the flow (writer), the API and the commands (readers).

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
    {prefix}:pub:{CHANNEL}      hash sku -> the last published quantity (absent: 0): a delta's
                                ``previous``, and how the feed drops a repeat (the channel snapshot
                                reads the live c:<channel> fields instead)
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
                            undeclared_node_events, writes; and feed_backlog:<channel>, the SKUs
                            waiting in that channel's throttle after its latest release round
    {prefix}:heartbeat      hash worker -> µs of its last heartbeat (about once a second)
    {prefix}:progress       hash applied:<worker> -> µs when that worker last wrote applied events,
                            event:<worker> -> the newest as_of (µs) in that write (staleness)
    {prefix}:generation     random token of this Redis's data; a new or missing one means the data
                            was lost (or `avail rebuild` asked): flow workers rewrite every SKU
    {prefix}:rebuilt        hash <host>:<pid> -> the generation that flow process finished rebuilding for
"""

from __future__ import annotations

from dataclasses import dataclass


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
