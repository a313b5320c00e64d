"""Future supply end to end (contract section 7): supply events on the real broker, through the
flow into Redis, answered by the API's schedule and promise routes; then across a SIGKILL of
the flow with a restart from recovery, and across a rules change with no new event."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from atp.events import Event, Receipt, Reserve, SupplyCancelled, SupplyExpected
from atp.rules import RuleSet
from atp.state import replay
from atp.supply import DAY, Schedule, channel_schedule, utc_day
from rulebook import load_rules
from tests.integration.test_rules_reload import replace_rules
from tests.support.engine import RULES_YAML, Engine, flow_log, running_engine, wait_for
from tests.support.streams import HOUR, SECOND, now_us

pytestmark = pytest.mark.e2e

PROMISE = "promise:\n  horizon_days: {horizon}\n  lead_days: {{dc: {dc}, store: {store}}}\n"
WEB = "    node_buffer: {store: 1}\n"
RULES_V1 = RULES_YAML.replace(WEB, WEB + "    future_supply: true\n") + PROMISE.format(horizon=30, dc=1, store=0)
RULES_V2 = RULES_YAML.replace(WEB, WEB + "    future_supply: true\n") + PROMISE.format(horizon=10, dc=2, store=1)
EPOCH = dt.date(1970, 1, 1)


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with running_engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("future-supply"), RULES_V1) as engine:
        yield engine


def want(sku: str, events: list[Event], rules: RuleSet, channel: str, today: str) -> Schedule:
    """What ``atp.supply`` computes from the same events, for the day the API calls today."""
    state = replay(sku, events, now=now_us(), rules=rules)
    now = (dt.date.fromisoformat(today) - EPOCH).days * DAY  # the API's day, should midnight pass mid-test
    arrivals = state.supply.arrivals(state.transfers) if state.supply else []
    return channel_schedule(
        sku, [(n, p.on_hand, p.reserved) for n, p in state.positions.items()], state.unsourced_reserved(channel),
        arrivals, rules, channel, now=now, horizon_days=rules.promise.horizon_days,
        lead_days=rules.promise.lead_days, future_supply=rules.channels[channel].future_supply,
    )


def answer(schedule: Schedule) -> tuple[int, int, list[tuple[str, int]]]:
    return schedule.available, schedule.horizon_days, [(d.isoformat(), n) for d, n in schedule.changes]


def served(engine: Engine, sku: str, channel: str) -> dict[str, Any]:
    response = engine.get(f"/v1/availability/{sku}/schedule", channel=channel)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def seen(body: dict[str, Any]) -> tuple[int, int, list[tuple[str, int]]]:
    return body["available"], body["horizon_days"], [(s["date"], s["available"]) for s in body["schedule"]]


def on(day: dt.date, days: int) -> str:
    return (day + dt.timedelta(days=days)).isoformat()


def promised(engine: Engine, channel: str, lines: list[tuple[str, int]]) -> dict[str, Any]:
    response = engine.post("/v1/availability/promise",
                           {"channel": channel, "lines": [{"sku": s, "qty": q} for s, q in lines]})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def check_answers(engine: Engine, events: dict[str, list[Event]], rules: RuleSet,
                  lines: list[tuple[str, int]]) -> dict[str, dict[str, Any]]:
    """Each SKU's schedule on web and amazon, and web's promise dates, equal ``atp.supply``'s."""
    bodies = {}
    for sku, stream in events.items():
        for channel in ("web", "amazon"):
            body = served(engine, sku, channel)
            assert body["rules_version"] == rules.version
            assert seen(body) == answer(want(sku, stream, rules, channel, body["today"])), (sku, channel)
            shown = engine.get(f"/v1/availability/{sku}", channel=channel).json()["channels"][channel]
            assert body["available"] == shown, (sku, channel)
            bodies[f"{sku}/{channel}"] = body
    promise = promised(engine, "web", lines)
    schedules = {sku: want(sku, events[sku], rules, "web", promise["today"]) for sku in events}
    dates = [schedules[sku].promise(qty) for sku, qty in lines]
    assert [(r["date"], r["available"]) for r in promise["results"]] == [
        (d.date.isoformat() if d.date else None, d.available) for d in dates]
    bodies["promise"] = promise
    return bodies


def test_schedules_and_promises_follow_the_events_a_restart_and_a_rules_change(engine: Engine) -> None:
    started = time.monotonic()
    launch, stocked = f"LAUNCH-{engine.name}", f"KETTLE-{engine.name}"
    t = now_us() - HOUR
    now = now_us()
    d0 = utc_day(now)  # lines come two days on or later: the dates hold should midnight pass mid-test
    history: dict[str, list[Event]] = {
        launch: [
            Receipt(f"{launch}-r1", launch, "dc-east", 10, t),
            SupplyExpected(f"{launch}-po1", launch, "po-1", "dc-east", 50, now + 3 * DAY, t + SECOND),
            SupplyExpected(f"{launch}-po2", launch, "po-2", "dc-west", 40, now + 6 * DAY, t + 2 * SECOND),
            SupplyExpected(f"{launch}-po3", launch, "po-3", "store-001", 20, now + 2 * DAY, t + 3 * SECOND),
            SupplyExpected(f"{launch}-po1b", launch, "po-1", "dc-east", 60, now + 4 * DAY, t + 4 * SECOND),
            SupplyCancelled(f"{launch}-po2x", launch, "po-2", t + 5 * SECOND),
            Reserve(f"{launch}-pre", launch, "pre-1", "web", 25, t + 6 * SECOND),  # a pre-order, at no node
            Receipt(f"{launch}-r3", launch, "store-001", 8, t + 7 * SECOND, "po-3"),  # receives 8 of po-3's 20
        ],
        stocked: [Receipt(f"{stocked}-r1", stocked, "dc-east", 20, t)],
    }
    engine.produce([e for stream in history.values() for e in stream])
    lines = [(launch, 1), (launch, 5), (launch, 65), (stocked, 20), (stocked, 21)]
    v1 = load_rules(engine.rules_dir)

    def settled(rules: RuleSet) -> dict[str, dict[str, Any]] | None:
        try:
            return check_answers(engine, history, rules, lines)
        except AssertionError:
            return None

    bodies = wait_for(lambda: settled(v1), lambda b: b is not None, timeout=20)
    assert bodies is not None, (check_answers(engine, history, v1, lines), flow_log(engine))
    # by hand: web today 10 + (8 − 1 store buffer) − 25 = −8 → 0; po-3's 12 left at the store on day 2 (no
    # lead): 10 + 19 − 25 = 4; po-1 revised to 60 on day 4, +1 lead at a DC: 70 + 19 − 25 = 64; po-2 cancelled
    web = bodies[f"{launch}/web"]
    assert seen(web) == (0, 30, [(on(d0, 2), 4), (on(d0, 5), 64)])
    assert seen(bodies[f"{launch}/amazon"]) == (6, 30, [])  # no future_supply: 10 × 80 % − 2 every day
    assert seen(bodies[f"{stocked}/web"]) == (20, 30, [])
    promise = bodies["promise"]
    assert [(r["date"], r["available"]) for r in promise["results"]] == [
        (on(d0, 2), 4), (on(d0, 5), 64), (None, 64), (promise["today"], 20), (None, 20)]

    # (a) SIGKILL, restart from recovery; a repeated receipt (no further effect), then a further revision
    engine.kill_flow()
    engine.start_flow()
    revision = SupplyExpected(f"{launch}-po1c", launch, "po-1", "dc-east", 30, now + 8 * DAY, t + 8 * SECOND)
    repeat = history[launch][-1]  # the receipt of po-3
    engine.produce([repeat, revision])  # one key, one partition: once the revision shows, the repeat was read
    history[launch] += [revision]
    bodies = wait_for(lambda: settled(v1), lambda b: b is not None, timeout=30)
    assert bodies is not None, (check_answers(engine, history, v1, lines), flow_log(engine))
    web = bodies[f"{launch}/web"]
    today = {name: body["available"] for name, body in bodies.items() if name != "promise"}
    assert seen(web) == (0, 30, [(on(d0, 2), 4), (on(d0, 9), 34)])  # po-1 now 30 on day 8: 40 + 19 − 25

    # (b) a shorter horizon and longer lead times: the dates move, today's number stays, with no new event
    replace_rules(engine, RULES_V2)
    v2 = load_rules(engine.rules_dir)
    assert v2.version != v1.version
    bodies = wait_for(lambda: settled(v2), lambda b: b is not None, timeout=20)
    assert bodies is not None, (check_answers(engine, history, v2, lines), flow_log(engine))
    assert {name: body["available"] for name, body in bodies.items() if name != "promise"} == today
    web = bodies[f"{launch}/web"]
    assert seen(web) == (0, 10, [(on(d0, 3), 4), (on(d0, 10), 34)])  # store +1 day, DC +2 days
    promise = bodies["promise"]
    assert [(r["date"], r["available"]) for r in promise["results"]] == [
        (on(d0, 3), 4), (on(d0, 10), 34), (None, 34), (promise["today"], 20), (None, 20)]
    print(f"future supply end to end in {time.monotonic() - started:.1f} s")
