"""The schedule and promise answers built from schedules (contract section 7), as JSON."""

from __future__ import annotations

from datetime import date

import orjson

from atp.rules import Channel, Node, NodeSelector, RuleSet
from atp.supply import DAY, Arrival, Schedule
from availability_api.promise import _schedules, promise_document, schedule_document
from availability_api.schemas import PromiseResponse, SkuSchedule
from projection.codec import encode_arrivals

TODAY = date(2026, 11, 18)
STEPS = Schedule(TODAY, 30, 0, ((date(2026, 11, 21), 54), (date(2026, 11, 25), 80)))
FLAT = Schedule(TODAY, 30, 7, ())
AS_OF_US = 1_795_428_900_123_456  # 2026-11-23T10:15:00.123456Z


def as_json(document: dict[str, object]) -> object:
    return orjson.loads(orjson.dumps(document))


class TestScheduleDocument:
    def test_the_contract_fields_with_dates_as_iso_strings(self) -> None:
        fields = {"a": str(AS_OF_US), "c:web": "0"}

        document = as_json(schedule_document("TV-55", "web", fields, STEPS, "3f9c2a1b"))

        assert document == {
            "sku": "TV-55", "channel": "web", "rules_version": "3f9c2a1b", "as_of": "2026-11-23T10:15:00.123Z",
            "today": "2026-11-18", "horizon_days": 30, "available": 0,
            "schedule": [{"date": "2026-11-21", "available": 54}, {"date": "2026-11-25", "available": 80}],
        }
        SkuSchedule.model_validate(document | {"stale": False})  # what /docs describes

    def test_a_sku_never_seen_has_no_as_of_and_an_empty_schedule(self) -> None:
        document = as_json(schedule_document("NOPE", "web", {}, Schedule(TODAY, 30, 0, ()), "3f9c2a1b"))

        assert document == {"sku": "NOPE", "channel": "web", "rules_version": "3f9c2a1b", "as_of": None,
                            "today": "2026-11-18", "horizon_days": 30, "available": 0, "schedule": []}


class TestPromiseDocument:
    def test_each_line_is_dated_on_its_own_in_request_order(self) -> None:
        lines = [("TV-55", 80), ("TV-55", 1), ("HDMI", 7), ("TV-55", 81), ("HDMI", 8), ("NOPE", 1)]
        schedules = {"TV-55": STEPS, "HDMI": FLAT, "NOPE": Schedule(TODAY, 30, 0, ())}

        document = as_json(promise_document("web", "3f9c2a1b", TODAY, lines, schedules))

        assert document == {"channel": "web", "rules_version": "3f9c2a1b", "today": "2026-11-18", "results": [
            {"sku": "TV-55", "qty": 80, "date": "2026-11-25", "available": 80},
            {"sku": "TV-55", "qty": 1, "date": "2026-11-21", "available": 54},  # lines do not add up
            {"sku": "HDMI", "qty": 7, "date": "2026-11-18", "available": 7},  # today: on hand
            {"sku": "TV-55", "qty": 81, "date": None, "available": 80},  # never: shown at the horizon
            {"sku": "HDMI", "qty": 8, "date": None, "available": 7},
            {"sku": "NOPE", "qty": 1, "date": None, "available": 0},
        ]}
        PromiseResponse.model_validate(document | {"stale": False})


class TestSchedulesKeptWithTheCachedHash:
    RULES = RuleSet(nodes={"store-001": Node("store-001", "store")}, channels={
        "web": Channel("web", NodeSelector(types=frozenset({"store"})), future_supply=True),
        "pickup": Channel("pickup", NodeSelector(types=frozenset({"store"}))),
    })
    MIDNIGHT = 1_794_960_000_000_000  # 2026-11-18T00:00:00Z
    FIELDS = {"c:web": "0", "c:pickup": "0", "s": encode_arrivals([Arrival("store-001", 5, MIDNIGHT + DAY // 2)])}

    def test_a_hit_computes_nothing_and_the_next_day_or_channel_computes_afresh(self) -> None:
        memo: dict[object, object] = {}
        found = [(self.FIELDS, memo)]

        before = _schedules(["TV-55"], found, self.RULES, "web", self.MIDNIGHT - 1)["TV-55"]
        assert before.changes == ((date(2026, 11, 18), 5),)
        assert _schedules(["TV-55"], found, self.RULES, "web", self.MIDNIGHT - 2)["TV-55"] is before
        after = _schedules(["TV-55"], found, self.RULES, "web", self.MIDNIGHT + 1)["TV-55"]
        assert after.changes == ((date(2026, 11, 19), 5),)  # stock not here is never promised for today
        assert _schedules(["TV-55"], found, self.RULES, "pickup", self.MIDNIGHT + 1)["TV-55"].changes == ()
        assert len(memo) == 3
