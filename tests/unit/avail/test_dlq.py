"""The pure parts of ``avail dlq``: reading dead-letter records, grouping, export and republish lines."""

from __future__ import annotations

import base64

import orjson
import pytest

from atp.events import Receipt, Sale, Topic
from atp.rejections import RejectCode, Rejection
from avail.dlq import (
    UNREADABLE,
    DeadLetterRecord,
    Refused,
    Republish,
    check_file,
    check_line,
    count_by_code,
    export_line,
    list_lines,
    parse_dead_letter,
    preview,
)
from dataflows.messages import DeadLetter, RawMessage
from engine_settings import FlowSettings

TOPICS = FlowSettings().topic_roles()
SALE = b'{"type":"sale","event_id":"e-1","sku":"TV-55","node":"store-001","qty":2,"occurred_at":"2026-11-23T10:15:00Z"}'
SALE_AT = 1_795_428_900_000_000


def letter(value: bytes | None, code: RejectCode = RejectCode.NOT_JSON, key: bytes | None = b"TV-55",
           topic: str = "pos.sales", offset: int = 7) -> bytes:
    """A dead letter exactly as the flow writes it."""
    return DeadLetter(RawMessage(topic, 1, offset, key, value), Rejection(code, "some detail", "qty")).to_json()


def record(code: str, offset: int = 0, value: bytes | None = b"x") -> DeadLetterRecord:
    return DeadLetterRecord(0, offset, None, code, "d", None, "pos.sales", 0, offset, None, value)


class TestReadingDeadLetters:
    def test_a_flow_dead_letter_reads_back_with_its_original_bytes(self) -> None:
        raw = b"\xff\x00not json"
        got = parse_dead_letter(letter(raw, RejectCode.NOT_UTF8, key=b"\x01k"), 0, 42, 1_700_000_000_000)
        assert (got.error, got.detail, got.field) == ("not_utf8", "some detail", "qty")
        assert (got.topic, got.partition, got.offset) == ("pos.sales", 1, 7)
        assert (got.key, got.value) == (b"\x01k", raw)
        assert (got.dlq_partition, got.dlq_offset, got.timestamp_ms) == (0, 42, 1_700_000_000_000)

    def test_a_tombstone_and_a_missing_key_stay_none(self) -> None:
        got = parse_dead_letter(letter(None, key=None), 0, 0)
        assert (got.key, got.value) == (None, None)

    @pytest.mark.parametrize("raw", [None, b"", b"garbage", b"[]", b'{"error":"x"}', b'{"error":"x","detail":"d",'
                                     b'"topic":"t","value":"***"}'])
    def test_a_record_not_in_the_contract_shape_is_kept_as_unreadable(self, raw: bytes | None) -> None:
        got = parse_dead_letter(raw, 0, 3)
        assert got.error == UNREADABLE and got.value == raw and got.detail.startswith("not a dead-letter record")


class TestGrouping:
    def test_codes_are_counted_most_frequent_first(self) -> None:
        records = [record("not_json"), record("bad_timestamp"), record("not_json"), record("wrong_topic"),
                   record("bad_timestamp"), record("not_json")]
        assert count_by_code(records) == [("not_json", 3), ("bad_timestamp", 2), ("wrong_topic", 1)]

    def test_the_listing_counts_all_codes_and_shows_the_newest_matching_entries(self) -> None:
        records = [record("not_json", 1), record("bad_timestamp", 2), record("not_json", 3), record("not_json", 4)]
        lines = list_lines(records, "not_json", show=2)
        assert lines[:3] == ["by code:", "         3  not_json", "         1  bad_timestamp"]
        assert lines[3] == "newest 2 with code not_json (newest last):"
        entries = [line for line in lines if "pos.sales[0]@" in line]
        assert [e.split("@")[1].split()[0] for e in entries] == ["3", "4"]

    def test_an_empty_listing_says_so(self) -> None:
        assert list_lines([], None, 20) == ["by code:", "no dead letters to show"]


class TestPreview:
    def test_text_is_shown_quoted_with_its_size(self) -> None:
        assert preview(b"not json") == "'not json' (8 bytes)"

    def test_control_characters_and_invalid_utf8_are_escaped(self) -> None:
        assert preview(b"a\nb\xff\x00") == "'a\\nb\\xff\\x00' (5 bytes)"

    def test_long_values_are_cut_on_one_line(self) -> None:
        shown = preview(b"[" * 70_000, width=10)
        assert shown == "'[[[[[[[[[[…' (70000 bytes)"

    def test_none_is_marked(self) -> None:
        assert preview(None) == "(none)"


class TestExport:
    def test_utf8_values_and_keys_are_exported_as_text(self) -> None:
        line = orjson.loads(export_line(parse_dead_letter(letter(SALE.replace(b"2,", b"0,"), key=b"TV-55"), 0, 0)))
        assert line["topic"] == "pos.sales" and line["key"] == "TV-55"
        assert line["value"].encode() == SALE.replace(b"2,", b"0,")
        assert (line["error"], line["detail"], line["partition"], line["offset"]) == ("not_json", "some detail", 1, 7)
        assert "value_base64" not in line

    def test_other_bytes_are_exported_as_base64(self) -> None:
        line = orjson.loads(export_line(parse_dead_letter(letter(b"\xff\xfe", key=b"\xc3"), 0, 0)))
        assert base64.b64decode(line["value_base64"]) == b"\xff\xfe" and "value" not in line
        assert base64.b64decode(line["key_base64"]) == b"\xc3"

    def test_an_exported_line_goes_back_unchanged_once_fixed(self) -> None:
        exported = export_line(parse_dead_letter(letter(SALE.replace(b'"qty":2', b'"qty":0')), 0, 0)).decode()
        refused = check_line(exported, 1, TOPICS)
        assert isinstance(refused, Refused) and refused.reason.startswith("qty_out_of_range:")
        fixed = check_line(exported.replace('\\"qty\\":0', '\\"qty\\":2'), 1, TOPICS)
        assert isinstance(fixed, Republish)
        assert fixed.event == Sale("e-1", "TV-55", "store-001", 2, SALE_AT) and fixed.value == SALE


def line(**body: object) -> str:
    return orjson.dumps(body).decode()


class TestRepublishLines:
    def test_a_valid_line_becomes_an_event_for_its_topic(self) -> None:
        checked = check_line(line(topic="pos.sales", value=SALE.decode(), key="ignored"), 3, TOPICS)
        assert isinstance(checked, Republish)
        assert (checked.line, checked.topic, checked.value) == (3, "pos.sales", SALE)
        assert str(checked) == "line 3: pos.sales key 'TV-55': sale 'e-1'"

    def test_the_value_may_be_written_as_a_json_object_or_base64(self) -> None:
        as_object = check_line(line(topic="pos.sales", value=orjson.loads(SALE)), 1, TOPICS)
        as_base64 = check_line(line(topic="pos.sales", value_base64=base64.b64encode(SALE).decode()), 1, TOPICS)
        assert isinstance(as_object, Republish) and isinstance(as_base64, Republish)
        assert as_object.event == as_base64.event == Sale("e-1", "TV-55", "store-001", 2, SALE_AT)

    @pytest.mark.parametrize(("text", "reason"), [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        (line(value=SALE.decode()), "topic None is not an inbound topic"),
        (line(topic="availability.dlq", value=SALE.decode()), "topic 'availability.dlq' is not an inbound topic"),
        (line(topic="pos.sales"), "no value"),
        (line(topic="pos.sales", value=None), "no value"),
        (line(topic="pos.sales", value=5), "value must be a string"),
        (line(topic="pos.sales", value="x", value_base64="eA=="), "either value or value_base64"),
        (line(topic="pos.sales", value_base64="***"), "value_base64 is not valid base64"),
        (line(topic="pos.sales", value="still not json"), "not_json:"),
        (line(topic="wms.picks", value=SALE.decode()), "wrong_topic: type 'sale' is not accepted on this topic"),
        (line(topic="pos.sales", value=SALE.decode().replace("2026-11-23T10:15:00Z", "yesterday")),
         "bad_timestamp: occurred_at"),
    ])  # fmt: skip
    def test_invalid_lines_are_refused_with_the_reason(self, text: str, reason: str) -> None:
        checked = check_line(text, 9, TOPICS)
        assert isinstance(checked, Refused), checked
        assert checked.reason.startswith(reason) or reason in checked.reason, checked.reason
        assert str(checked).startswith("line 9: refused: ")

    def test_the_topic_names_are_the_configured_ones(self) -> None:
        renamed = FlowSettings(topic_pos_sales="shop1.pos").topic_roles()
        assert isinstance(check_line(line(topic="shop1.pos", value=SALE.decode()), 1, renamed), Republish)
        assert isinstance(check_line(line(topic="pos.sales", value=SALE.decode()), 1, renamed), Refused)

    def test_blank_and_comment_lines_are_skipped_and_line_numbers_kept(self) -> None:
        receipt = SALE.replace(b'"sale"', b'"receipt"').decode()
        text = ["", "# fixed by hand", line(topic="erp.inventory", value=receipt), "{", "  ",
                line(topic="pos.sales", value=SALE.decode())]
        items, refused = check_file(text, TOPICS)
        assert [(i.line, type(i.event)) for i in items] == [(3, Receipt), (6, Sale)]
        assert [r.line for r in refused] == [4]
        assert TOPICS["erp.inventory"] is Topic.ERP_INVENTORY
