"""The Redis projection the flow writes and the API and commands read: keys, field codec, data generations."""

from atp.native import use_sources_unless_wanted

use_sources_unless_wanted()  # before any compiled module is imported (AVAIL_NATIVE=0)

# ruff: noqa: E402

from projection.codec import (
    AS_OF,
    CHANNEL_PREFIX,
    CONSUMER_LAG_PREFIX,
    FEED_BACKLOG_PREFIX,
    NODE_PREFIX,
    RULES_VERSION,
    SUPPLY,
    UNSOURCED_PREFIX,
    VERSION,
    backlog_field,
    consumer_lag_field,
    decode_arrivals,
    decode_position,
    encode_arrivals,
    encode_position,
    format_as_of,
    rules_document,
)
from projection.generations import ensure_generation, live_processes, rebuilt_by, request_rebuild
from projection.keys import Keys

__all__ = [
    "AS_OF",
    "CHANNEL_PREFIX",
    "CONSUMER_LAG_PREFIX",
    "FEED_BACKLOG_PREFIX",
    "NODE_PREFIX",
    "RULES_VERSION",
    "SUPPLY",
    "UNSOURCED_PREFIX",
    "VERSION",
    "Keys",
    "backlog_field",
    "consumer_lag_field",
    "decode_arrivals",
    "decode_position",
    "encode_arrivals",
    "encode_position",
    "ensure_generation",
    "format_as_of",
    "live_processes",
    "rebuilt_by",
    "request_rebuild",
    "rules_document",
]
