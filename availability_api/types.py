"""Type aliases shared by the API modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, TypeAlias

from pydantic import StringConstraints

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

ID_PATTERN = r"^[A-Za-z0-9._:/-]{1,64}$"
"""The contract's charset for SKUs, nodes and channels (section 1)."""

ID_RULE = "1 to 64 characters of A-Z a-z 0-9 . _ - : /"

MAX_BATCH = 1000
MAX_PROMISE_QTY = 1_000_000_000
"""Largest qty of a promise line: far past any stock, and small enough for every JSON reader."""
DEFAULT_PAGE = 500
MAX_PAGE = 5000

Sku: TypeAlias = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ChannelName: TypeAlias = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

SkuFields: TypeAlias = Mapping[str, str]
"""One SKU hash of the projection as Redis returns it (field → value)."""

Document: TypeAlias = dict[str, object]
"""A JSON object about to be serialised with orjson."""

RedisClient: TypeAlias = "Redis | RedisCluster"
