"""The fast path answers only bodies the batch model accepts; everything else goes to the routes."""

from __future__ import annotations

import orjson
import pytest

from availability_api.fast_path import _batch_request
from availability_api.schemas import BatchRequest


@pytest.mark.parametrize("body", [
    {"skus": ["TV-55"]},
    {"skus": ["TV-55", "a/b:c.d_e"], "channel": "web"},
    {"skus": ["TV-55"], "channel": None},
    {"skus": ["X"] * 1000},
])
def test_a_body_the_model_accepts_is_taken_as_is(body: dict[str, object]) -> None:
    model = BatchRequest.model_validate(body)
    assert _batch_request(orjson.dumps(body)) == (model.skus, model.channel)


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'"skus"', b"{}",
    b'{"skus": []}', b'{"skus": "TV-55"}', b'{"skus": [55]}', b'{"skus": ["bad sku"]}',
    b'{"skus": ["TV-55"], "channel": 3}', b'{"skus": ["TV-55"], "channel": ""}',
    b'{"skus": ["TV-55"], "extra": 1}', orjson.dumps({"skus": ["X"] * 1001}),
    orjson.dumps({"skus": ["X" * 65]}),
])
def test_anything_else_is_left_to_the_route(body: bytes) -> None:
    assert _batch_request(body) is None
