"""Keeps the latest dead letters in Redis, summarised, for the operations page.

The dead-letter topic holds every rejected message whole; this list holds the newest
``KEPT`` as small JSON documents (when, where from, the error and, when the value was
JSON that named them, the event_id and SKU) so ``/ui`` can show them without a Kafka
client. A replay may list a reject again: the list is a window, not a record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.messages import DeadLetter
from projection import Keys
from projection.connect import TRANSIENT_ERRORS, SyncClient, sync_client

log = logging.getLogger(__name__)

KEPT = 100
_ID_FIELDS = ("event_id", "sku")


def summary(letter: DeadLetter, at_us: int) -> bytes:
    raw, rejection = letter.raw, letter.rejection
    document: dict[str, Any] = {
        "at_us": at_us, "topic": raw.topic, "partition": raw.partition, "offset": raw.offset,
        "error": rejection.code.value, "detail": rejection.detail, "field": rejection.field,
    }
    document.update(_named_ids(raw.value))
    return orjson.dumps(document)


def _named_ids(value: bytes | None) -> dict[str, str]:
    """The event_id and sku of a JSON object value, when present as strings; nothing otherwise."""
    if not value or len(value) > 65_536:
        return {}
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {name: decoded[name] for name in _ID_FIELDS if isinstance(decoded.get(name), str)}


class RecentRejectsSink(DynamicSink[DeadLetter]):
    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.redis_url = redis_url
        self.keys = keys

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecentRejects:
        return _RecentRejects(sync_client(self.redis_url, socket_timeout=5, socket_connect_timeout=5), self.keys)


class _RecentRejects(StatelessSinkPartition[DeadLetter]):
    def __init__(self, client: SyncClient, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def write_batch(self, items: list[DeadLetter]) -> None:
        at_us = time.time_ns() // 1000
        newest = [summary(letter, at_us) for letter in items[-KEPT:]]
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.keys.rejects, *newest)
        pipe.ltrim(self.keys.rejects, 0, KEPT - 1)
        try:
            pipe.execute()
        except TRANSIENT_ERRORS as exc:  # a window for people to look at: never worth holding the flow
            log.warning("recent rejects not listed (%d): %s", len(newest), exc)

    def close(self) -> None:
        self.client.close()
