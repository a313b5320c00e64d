"""``avail rules preview``'s schedules: the days to come under the live and the proposed rules."""

from __future__ import annotations

import datetime as dt

import pytest

from atp.rules import RuleSet
from atp.supply import DAY, Arrival, Schedule
from avail.schedule_preview import SchedulePreview, first_day, unit_days
from projection import encode_arrivals
from rulebook import published_rules

RULES = """\
nodes:
  - {{id: dc-east, type: dc}}
  - {{id: store-001, type: store, tags: [ship_from_store]}}
promise:
  horizon_days: {horizon}
  lead_days: {{dc: {dc}}}
channels:
  web:
    nodes: {{types: [dc], tags: [ship_from_store]}}
    percent: 80
    buffer: 2
    future_supply: true
  amazon:
    nodes: {{types: [dc]}}
    future_supply: {amazon}
"""


def rules(horizon: int = 30, dc: int = 1, amazon: bool = False) -> RuleSet:
    loaded = published_rules({"rules.yaml": RULES.format(horizon=horizon, dc=dc, amazon=str(amazon).lower())})
    assert loaded is not None
    return loaded


D0 = dt.date(2026, 11, 23)
T0 = (D0 - dt.date(1970, 1, 1)).days * DAY  # its midnight, UTC
NOW = T0 + 9 * 3_600_000_000


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def supply(*arrivals: Arrival) -> str:
    return encode_arrivals(arrivals)


HASHES = {
    # a pre-order of 30 for web at no node; 100 at the DC on day 2: sellable day 3 with 1 lead day (100 − 30 → 54)
    "PRE-1": {"c:web": "0", "c:amazon": "0", "u:web": "30", "s": supply(Arrival("dc-east", 100, T0 + 2 * DAY))},
    # 9 at the DC on day 20: sellable day 21 (9 → 5) within 30 days, past a horizon of 10
    "FAR-1": {"c:web": "0", "c:amazon": "0", "s": supply(Arrival("dc-east", 9, T0 + 20 * DAY))},
    # 5 at a store on day 5 (no lead time for stores): 10 + 5 → 10, whatever the DC's lead days
    "NEAR-1": {"c:web": "6", "c:amazon": "10", "n:dc-east": "10,0,0,0,0,10",
               "s": supply(Arrival("store-001", 5, T0 + 5 * DAY))},
    # nothing on its way: not compared
    "STOCK-1": {"c:web": "30", "c:amazon": "40", "n:dc-east": "40,0,0,0,0,40"},
}


def compared(live: RuleSet, proposed: RuleSet, keep: int = 10) -> SchedulePreview:
    preview = SchedulePreview(live, proposed, NOW, keep=keep)
    for sku, fields in HASHES.items():
        preview.add(sku, fields, {name[2:]: int(v) for name, v in fields.items() if name.startswith("c:")})
    return preview


class TestSchedulePreview:
    def test_longer_lead_days_and_a_shorter_horizon_move_the_dates(self) -> None:
        preview = compared(rules(), rules(horizon=10, dc=3))

        web = preview.channels["web"]
        assert (web.skus, web.changed, web.later, web.earlier, web.horizon_days) == (3, 2, 2, 0, (30, 10))
        assert {(c.sku, c.unit_days, c.first_before, c.first_after) for c in preview.changes} == {
            ("PRE-1", 2 * 54, day(3), day(5)),  # 54 two days later
            ("FAR-1", 10 * 5, day(21), None),  # days 21 … 30 no longer promised
        }
        assert [sku for _, sku, _, _ in web.largest()] == ["PRE-1", "FAR-1"]

    def test_unchanged_rules_change_no_schedule(self) -> None:
        preview = compared(rules(), rules())

        assert (preview.channels["web"].skus, preview.channels["web"].changed, preview.changes) == (3, 0, [])
        assert "amazon" not in preview.channels  # future_supply under neither

    def test_a_channel_turning_future_supply_on_promises_its_supply(self) -> None:
        preview = compared(rules(), rules(amazon=True))

        amazon = preview.channels["amazon"]
        assert (amazon.skus, amazon.changed, amazon.later, amazon.earlier) == (3, 2, 0, 2)
        pre = next(c for c in preview.changes if c.sku == "PRE-1" and c.channel == "amazon")
        assert (pre.first_before, pre.first_after, pre.unit_days) == (None, day(3), 28 * 100)  # days 3 … 30
        assert preview.channels["web"].changed == 0

    def test_a_channel_turning_future_supply_off_shows_today_every_day(self) -> None:
        preview = compared(rules(amazon=True), rules())

        after = {c.sku: (c.first_before, c.first_after) for c in preview.changes if c.channel == "amazon"}
        assert after == {"PRE-1": (day(3), None), "FAR-1": (day(21), None)}  # NEAR-1 shows 10 every day anyway

    def test_only_the_largest_are_kept(self) -> None:
        preview = compared(rules(), rules(horizon=10, dc=3), keep=1)

        assert [sku for _, sku, _, _ in preview.channels["web"].largest()] == ["PRE-1"]
        assert len(preview.changes) == 2  # every change is still listed for --json

    def test_json_and_lines_say_the_same(self) -> None:
        preview = compared(rules(), rules(horizon=10, dc=3), keep=1)

        document = preview.to_json()
        assert document["today"] == "2026-11-23"
        web = document["channels"]["web"]
        assert {k: v for k, v in web.items() if k != "top"} == {
            "horizon_days": {"before": 30, "after": 10}, "skus": 3, "changed": 2,
            "first_date_later": 2, "first_date_earlier": 0,
        }
        assert web["top"] == [{"sku": "PRE-1", "unit_days": 108,
                               "before": {"available": 0, "first_date": "2026-11-26",
                                          "schedule": [{"date": "2026-11-26", "available": 54}]},
                               "after": {"available": 0, "first_date": "2026-11-28",
                                         "schedule": [{"date": "2026-11-28", "available": 54}]}}]
        assert {"sku": "FAR-1", "channel": "web", "unit_days": 50, "first_date_before": "2026-12-14",
                "first_date_after": None} in document["changes"]
        assert list(preview.lines()) == [
            "schedules (today 2026-11-23, days after today, SKUs with open supply):",
            "channel web (horizon 30 -> 10 days): 2 of 3 SKUs change; first date with stock later for 2, earlier for 0",
            "    PRE-1: 0, 54 from 11-26  ->  0, 54 from 11-28  (108 unit-days)",
        ]

    def test_no_channel_with_future_supply_prints_nothing(self) -> None:
        flat = published_rules({"rules.yaml": "nodes:\n  - {id: dc-east, type: dc}\nchannels:\n  web:\n"
                                              "    nodes: {types: [dc]}\n"})
        assert flat is not None

        assert list(compared(flat, flat).lines()) == []


class TestUnitDays:
    @pytest.mark.parametrize(("before", "after", "moved"), [
        (Schedule(D0, 30, 0, ()), Schedule(D0, 30, 0, ()), 0),
        (Schedule(D0, 30, 5, ()), Schedule(D0, 30, 7, ()), 2 * 30),  # today itself does not count
        (Schedule(D0, 30, 0, ((day(3), 4),)), Schedule(D0, 30, 0, ((day(5), 4),)), 2 * 4),
        (Schedule(D0, 10, 0, ((day(3), 4),)), Schedule(D0, 30, 0, ((day(3), 4),)), 0),  # same past the horizon
        (Schedule(D0, 30, 0, ((day(20), 9),)), Schedule(D0, 10, 0, ()), 11 * 9),  # days 20 … 30
    ], ids=["flat", "today-differs", "two-days-later", "horizon-only", "past-a-shorter-horizon"])
    def test_units_times_days_between_the_two(self, before: Schedule, after: Schedule, moved: int) -> None:
        assert unit_days(before, after) == unit_days(after, before) == moved

    def test_first_day_showing_stock(self) -> None:
        assert first_day(Schedule(D0, 30, 1, ((day(2), 5),))) == D0
        assert first_day(Schedule(D0, 30, 0, ((day(2), 5),))) == day(2)
        assert first_day(Schedule(D0, 30, 0, ())) is None
