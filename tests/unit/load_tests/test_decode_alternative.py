"""The benchmark's second decoder (load_tests/decode_alternative.py) agrees with atp.decoding on section 7.

Section 1 is compared in tests/unit/atp/test_decoding.py; here: the supply events, a
dated shipment, and every value the load generator makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp import decoding
from atp.events import TOPIC_TYPES, Event, SupplyCancelled, SupplyExpected, Topic, TransferShipped
from atp.rejections import RejectCode, Rejection
from load_tests import decode_alternative
from load_tests.generator import LoadGenerator, Scenario

Decode = Callable[..., Event | Rejection]
DECODERS = [pytest.param(decoding.decode_event, id="msgspec"), pytest.param(decode_alternative.decode_event,
                                                                             id="orjson")]
AT, AT_US = "2026-11-23T10:15:00.123Z", 1_795_428_900_123_000
ETA, ETA_US = "2026-12-01T08:00:00+01:00", 1_796_108_400_000_000
BODIES: dict[str, tuple[dict[str, Any], Event]] = {
    "supply_expected": (
        {"type": "supply_expected", "event_id": "e-1", "sku": "TV-55", "supply_id": "PO-4711/1", "node": "dc-east",
         "qty": 40, "expected_at": ETA, "occurred_at": AT},
        SupplyExpected("e-1", "TV-55", "PO-4711/1", "dc-east", 40, ETA_US, AT_US),
    ),
    "supply_cancelled": (
        {"type": "supply_cancelled", "event_id": "e-2", "sku": "TV-55", "supply_id": "PO-4711/1", "occurred_at": AT},
        SupplyCancelled("e-2", "TV-55", "PO-4711/1", AT_US),
    ),
    "transfer_shipped": (
        {"type": "transfer_shipped", "event_id": "e-3", "sku": "TV-55", "transfer_id": "T-1", "from_node": "dc-east",
         "to_node": "store-001", "qty": 4, "occurred_at": AT, "expected_at": ETA},
        TransferShipped("e-3", "TV-55", "T-1", "dc-east", "store-001", 4, AT_US, ETA_US),
    ),
}  # fmt: skip


def body(type_name: str, **changes: Any) -> bytes:
    """A valid event as JSON, with fields changed (or dropped when ``...``)."""
    fields = BODIES[type_name][0] | changes
    return orjson.dumps({k: v for k, v in fields.items() if v is not ...})


def outcome(result: Event | Rejection) -> object:
    return (result.code, result.field) if isinstance(result, Rejection) else result


def test_every_value_of_a_generated_stream_decodes_the_same_with_both() -> None:
    scenario = Scenario.at_scale("small", day_events=20_000, transit_events=2_000, supply_share=0.05)
    types: set[str] = set()
    for role, _, value in LoadGenerator(scenario).records(30_000):
        accepted = TOPIC_TYPES[Topic(role)]
        event = decoding.decode_event(value, accepted)
        assert not isinstance(event, Rejection), (value, event)
        assert decode_alternative.decode_event(value, accepted) == event
        types.add(orjson.loads(value)["type"])
    assert {"supply_expected", "supply_cancelled", "transfer_shipped", "receipt"} <= types


@pytest.mark.parametrize("decode", DECODERS)
class TestSupplyEvents:
    @pytest.mark.parametrize("type_name", BODIES)
    def test_each_decodes_with_every_field(self, decode: Decode, type_name: str) -> None:
        assert decode(body(type_name)) == BODIES[type_name][1]

    def test_supply_events_belong_on_erp_supply_only(self, decode: Decode) -> None:
        on_supply, on_inventory = TOPIC_TYPES[Topic.ERP_SUPPLY], TOPIC_TYPES[Topic.ERP_INVENTORY]
        assert isinstance(decode(body("supply_cancelled"), on_supply), SupplyCancelled)
        assert outcome(decode(body("supply_expected"), on_inventory)) == (RejectCode.WRONG_TOPIC, "type")

    def test_a_shipment_without_or_with_a_null_expected_at_has_none(self, decode: Decode) -> None:
        for raw in (body("transfer_shipped", expected_at=...), body("transfer_shipped", expected_at=None)):
            shipped = decode(raw)
            assert isinstance(shipped, TransferShipped) and shipped.expected_at is None

    def test_a_null_expected_at_on_a_line_is_wrong_type(self, decode: Decode) -> None:
        assert outcome(decode(body("supply_expected", expected_at=None))) == (RejectCode.WRONG_TYPE, "expected_at")

    @pytest.mark.parametrize("type_name", ["supply_expected", "transfer_shipped"])
    def test_occurred_at_is_checked_before_expected_at(self, decode: Decode, type_name: str) -> None:
        both = body(type_name, expected_at="soon", occurred_at="now")
        assert outcome(decode(both)) == (RejectCode.BAD_TIMESTAMP, "occurred_at")

    @pytest.mark.parametrize("bad", ["", "x" * 129])
    def test_a_supply_id_not_1_to_128_characters_is_invalid_id(self, decode: Decode, bad: str) -> None:
        assert outcome(decode(body("supply_cancelled", supply_id=bad))) == (RejectCode.INVALID_ID, "supply_id")


FIELD_NAMES = sorted({f for fields, _ in BODIES.values() for f in fields if f != "type"})
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=140)
    | st.sampled_from([AT, ETA, "2026-02-30T00:00:00Z"])
)  # fmt: skip
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@given(type_name=st.sampled_from(sorted(BODIES)), field=st.sampled_from(FIELD_NAMES), replacement=json_values)
def test_both_decoders_agree_on_any_single_fault(type_name: str, field: str, replacement: object) -> None:
    raw = orjson.dumps(BODIES[type_name][0] | {field: replacement})
    assert outcome(decoding.decode_event(raw)) == outcome(decode_alternative.decode_event(raw))


@given(type_name=st.sampled_from(sorted(BODIES)), field=st.sampled_from(FIELD_NAMES))
def test_both_decoders_agree_on_any_missing_field(type_name: str, field: str) -> None:
    raw = body(type_name, **{field: ...})
    assert outcome(decoding.decode_event(raw)) == outcome(decode_alternative.decode_event(raw))
