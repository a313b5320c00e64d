"""A SKU's shard is part of the recovery format: the same SKU must land in the same shard in every release."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflows.shard_key import SHARDS, shard_of


@pytest.mark.parametrize(("sku", "shard"), [("SKU-00001", "s032"), ("TV-0001-55", "s036"), ("A", "s011")])
def test_known_skus_keep_their_shards(sku: str, shard: str) -> None:
    assert shard_of(sku) == shard


@given(st.text(alphabet="ABCXYZabc0123456789._:/-", min_size=1, max_size=64))
def test_the_shard_is_the_crc32_of_the_sku_modulo_the_shard_count(sku: str) -> None:
    assert shard_of(sku) == f"s{zlib.crc32(sku.encode()) % SHARDS:03d}"
