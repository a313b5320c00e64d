"""Which state shard holds a SKU: CRC-32 of its id, stable across processes and restarts.

``SHARDS`` is part of the recovery format: a store written with another count cannot
be resumed, since its SKUs would sit in other shards than their events reach. So is the
layout of the shards' state logs (``state_log``).
"""

from __future__ import annotations

import zlib

SHARDS = 64
RECOVERY_FORMAT = f"shards-{SHARDS}+state-log-1"


SHARD_NAMES = tuple(f"s{shard:03d}" for shard in range(SHARDS))
"""One string per shard, shared by every SKU that names it."""


def shard_of(sku: str) -> str:
    return SHARD_NAMES[zlib.crc32(sku.encode()) % SHARDS]
