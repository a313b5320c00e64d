from __future__ import annotations

import dataclasses

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.decoding import decode_event
from atp.encoding import OPTIONAL, encode_event, event_template, rfc3339
from atp.events import (
    TYPE_NAMES,
    Event,
    Pick,
    Reserve,
    SupplyCancelled,
    SupplyExpected,
    TransferReceived,
    TransferShipped,
)
from tests.unit.atp.strategies import event_bodies

events = st.tuples(event_bodies, st.text("abcXYZ-09", min_size=1, max_size=20)).map(
    lambda pair: dataclasses.replace(pair[0], event_id=pair[1]))


class TestEncodeEvent:
    @given(events)
    def test_decoding_an_encoded_event_gives_it_back(self, event: Event) -> None:
        assert decode_event(encode_event(event)) == event

    @given(events)
    def test_type_comes_first_and_unset_optional_fields_are_left_out(self, event: Event) -> None:
        body = orjson.loads(encode_event(event))
        assert next(iter(body)) == "type" and body["type"] == TYPE_NAMES[type(event)]
        assert None not in body.values()

    @pytest.mark.parametrize(("micros", "text"), [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1_795_428_900_123_456, "2026-11-23T10:15:00.123456Z"),
        (1_795_428_900_000_001, "2026-11-23T10:15:00.000001Z"),
    ])
    def test_times_are_rfc3339_utc_with_microseconds(self, micros: int, text: str) -> None:
        assert rfc3339(micros) == text

    @given(st.integers(0, 4_000_000_000_000_000), st.integers(0, 4_000_000_000_000_000))
    def test_time_strings_sort_as_the_times_do(self, a: int, b: int) -> None:
        assert (rfc3339(a) < rfc3339(b)) == (a < b)


class TestEncodeSupplyEvents:
    def test_supply_events_use_their_contract_names_and_times(self) -> None:
        line = SupplyExpected("e-1", "TV-55", "PO-4711/1", "dc-east", 100, 1_795_219_200_000_000,
                              1_795_046_400_000_000)

        assert orjson.loads(encode_event(line)) == {
            "type": "supply_expected", "event_id": "e-1", "sku": "TV-55", "supply_id": "PO-4711/1",
            "node": "dc-east", "qty": 100, "expected_at": "2026-11-21T00:00:00.000000Z",
            "occurred_at": "2026-11-19T00:00:00.000000Z"}
        assert orjson.loads(encode_event(SupplyCancelled("e-2", "TV-55", "PO-4711/1", 0))) == {
            "type": "supply_cancelled", "event_id": "e-2", "sku": "TV-55", "supply_id": "PO-4711/1",
            "occurred_at": "1970-01-01T00:00:00.000000Z"}

    def test_a_shipment_carries_its_eta_only_when_it_has_one(self) -> None:
        shipped = TransferShipped("e-3", "TV-55", "t-1", "dc-east", "store-001", 6, 0)

        assert "expected_at" not in orjson.loads(encode_event(shipped))
        dated = dataclasses.replace(shipped, expected_at=1_795_219_200_000_000)
        assert orjson.loads(encode_event(dated))["expected_at"] == "2026-11-21T00:00:00.000000Z"


class TestEventTemplate:
    def test_a_filled_template_encodes_the_same_event(self) -> None:
        template = event_template(Pick, {"event_id": b'"%s"', "sku": b'"%s"', "node": b'"%s"', "qty": b"%d",
                                         "occurred_at": b'"%s"', "reservation_id": OPTIONAL})
        pick = Pick("e-1", "TV-55", "dc-east", 2, 1_795_428_900_000_000, "R-9")
        at = rfc3339(pick.occurred_at).encode()
        filled = template % (b"e-1", b"TV-55", b"dc-east", 2, at, b',"reservation_id":"R-9"')
        assert decode_event(filled) == pick
        assert orjson.loads(filled) == orjson.loads(encode_event(pick))
        unsourced = template % (b"e-1", b"TV-55", b"dc-east", 2, at, b"")
        assert decode_event(unsourced) == dataclasses.replace(pick, reservation_id=None)

    def test_an_optional_field_left_out_is_never_written(self) -> None:
        template = event_template(Reserve, {"event_id": b'"%s"', "sku": b'"%s"', "reservation_id": b'"%s"',
                                            "channel": b'"%s"', "qty": b"%d", "occurred_at": b'"%s"'})
        assert b"node" not in template and b"expires_at" not in template

    def test_a_missing_required_field_or_an_unknown_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="TransferReceived.to_node is required"):
            event_template(TransferReceived, {"event_id": b'"%s"', "sku": b'"%s"', "transfer_id": b'"%s"',
                                              "from_node": b'"%s"', "qty": b"%d", "occurred_at": b'"%s"'})
        with pytest.raises(ValueError, match="has no field"):
            event_template(Pick, {"nodes": b'"%s"'})
