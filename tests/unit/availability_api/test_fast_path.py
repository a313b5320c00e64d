"""The fast path answers only bodies the batch model accepts; everything else goes to the routes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

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
    orjson.dumps({"skus": ["X" * 65]}), orjson.dumps({"skus": ["A\nB"]}), orjson.dumps({"skus": ["A", "B\n"]}),
    orjson.dumps({"skus": ["A", ""]}), orjson.dumps({"skus": ["A", None]}),
    orjson.dumps({"skus": ["X" * 64, "X" * 65]}),
])
def test_anything_else_is_left_to_the_route(body: bytes) -> None:
    assert _batch_request(body) is None


_ID_CHARS = "Aa9._:/-\n \t\"\\é"


@given(st.lists(st.text(alphabet=_ID_CHARS, max_size=66), min_size=1, max_size=5))
def test_the_skus_taken_are_exactly_those_the_model_accepts(skus: list[str]) -> None:
    body = orjson.dumps({"skus": skus})
    try:
        model: BatchRequest | None = BatchRequest.model_validate_json(body)
    except ValidationError:
        model = None
    assert _batch_request(body) == (None if model is None else (model.skus, model.channel))
