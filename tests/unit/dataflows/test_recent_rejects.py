"""The recent-rejects window's summaries: where a dead letter came from, why, and which event it named."""

from __future__ import annotations

import orjson

from atp.rejections import RejectCode, Rejection
from dataflows.messages import DeadLetter, RawMessage
from dataflows.recent_rejects import summary


def letter(value: bytes | None, rejection: Rejection) -> DeadLetter:
    return DeadLetter(RawMessage("pos.sales", 3, 41, b"TV-55", value), rejection)


def test_a_summary_names_the_source_the_error_and_the_event_the_value_named() -> None:
    value = b'{"event_id": "e-9", "sku": "TV-55", "qty": "many"}'
    document = orjson.loads(summary(letter(value, Rejection(RejectCode.WRONG_TYPE, "must be an integer", "qty")), 7))
    assert document == {"at_us": 7, "topic": "pos.sales", "partition": 3, "offset": 41, "error": "wrong_type",
                        "detail": "must be an integer", "field": "qty", "event_id": "e-9", "sku": "TV-55"}


def test_a_value_that_is_not_a_json_object_names_no_event() -> None:
    for value in (b"not json", b"[1, 2]", b'{"event_id": 5}', None, b"{" + b" " * 70_000 + b"}"):
        document = orjson.loads(summary(letter(value, Rejection(RejectCode.NOT_JSON, "not valid JSON")), 1))
        assert "event_id" not in document and "sku" not in document
        assert document["error"] == "not_json"
