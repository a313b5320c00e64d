"""Editing the rules directory under a running flow: new numbers, or the old ones kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atp.events import Event, Receipt, Reserve, Sale, SupplyExpected
from atp.supply import DAY
from rulebook import load_rules
from tests.integration.test_flow import HOUR, now_us, observed_many
from tests.support.engine import ADMIN_KEY, RULES_YAML, Engine, flow_log, wait_for
from tests.support.reference import Expected, expected

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url

# amazon shows half instead of 80 %; store_pickup is gone; ebay is new
RULES_V2 = (
    RULES_YAML.replace("    percent: 80", "    percent: 50")
    .replace("  store_pickup:\n    nodes: {tags: [pickup]}\n", "  ebay:\n    nodes: {types: [dc]}\n    buffer: 1\n")
)


@pytest.fixture(params=[1, 2], ids=["one-process", "two-processes"])
def engine(kafka_bootstrap: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The flow as one process, and as a two-process cluster (each adopts the published rules)."""
    running = Engine(kafka_bootstrap, redis_url, tmp_path)
    running.start_flow(processes=request.param)
    running.start_api()
    yield running
    running.stop()


def stock(skus: list[str]) -> dict[str, list[Event]]:
    t = now_us() - HOUR
    return {sku: [Receipt(f"{sku}-1", sku, "dc-east", 40 + i, t), Receipt(f"{sku}-2", sku, "store-001", 9, t),
                  Receipt(f"{sku}-3", sku, "store-002", 5, t), Sale(f"{sku}-4", sku, "dc-east", i % 3 + 1, t + 1),
                  Reserve(f"{sku}-5", sku, f"r-{sku}", "amazon", 2, t + 2, None, None)]
            for i, sku in enumerate(skus)}


def replace_rules(engine: Engine, text: str) -> None:
    target = engine.rules_dir / "rules.yaml"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(target)  # one atomic step, as a deploy or an editor's save would do


def test_a_valid_change_is_applied_without_restart_and_a_broken_one_is_refused(engine: Engine) -> None:
    skus = [f"TV-reload-{engine.name}-{i:02d}" for i in range(30)]
    events = stock(skus)
    engine.produce([e for sku in skus for e in events[sku]])
    v1 = load_rules(engine.rules_dir)
    want_v1 = {sku: expected(sku, events[sku], now=now_us(), rules=v1) for sku in skus}
    got = wait_for(lambda: observed_many(engine, skus), lambda seen: seen == want_v1)
    assert got == want_v1, flow_log(engine)

    replace_rules(engine, RULES_V2)
    changed_at = time.monotonic()
    v2 = load_rules(engine.rules_dir)
    want_v2 = {sku: expected(sku, events[sku], now=now_us(), rules=v2) for sku in skus}
    assert want_v2 != want_v1

    def versions_and_numbers() -> tuple[set[str], dict[str, Expected]]:
        answer = engine.post("/v1/availability/batch", {"skus": skus}).json()["results"]
        return {r["rules_version"] for r in answer}, observed_many(engine, skus)

    seen_versions, numbers = wait_for(versions_and_numbers, lambda s: s == ({v2.version}, want_v2), timeout=20)
    took = time.monotonic() - changed_at
    assert (seen_versions, numbers) == ({v2.version}, want_v2), flow_log(engine)
    assert took < 10, f"the change took {took:.1f} s to show"
    print(f"rules change visible over HTTP for {len(skus)} SKUs after {took:.2f} s")
    assert numbers[skus[0]].channels.keys() == {"web", "amazon", "ebay"}
    gone = wait_for(lambda: engine.get(f"/v1/availability/{skus[0]}", channel="store_pickup").status_code,
                    lambda status: status == 422, timeout=5)  # the API re-reads the rules at most every second
    assert gone == 422
    ebay = engine.get("/v1/channels/ebay/snapshot", limit="1000").json()
    assert {item["sku"] for item in ebay["items"]} >= set(skus) and ebay["rules_version"] == v2.version

    broken = RULES_V2.replace("    percent: 50", "    percent: 120")
    line = broken.splitlines().index("    percent: 120") + 1
    replace_rules(engine, broken)
    ready = wait_for(lambda: engine.get("/readyz", key="").json(),
                     lambda body: "refused" in body["checks"]["rules"]["detail"], timeout=15)
    detail = ready["checks"]["rules"]["detail"]
    assert ready["ready"] is True, "a refused change keeps the engine serving the last valid set"
    assert f"rules.yaml:{line} channels.amazon.percent: must be between 0 and 100, got 120" in detail
    assert f"still running {v2.version}" in detail
    metrics = engine.get("/metrics", key=ADMIN_KEY).text
    assert "avail_rules_reload_failures_total 1.0" in metrics
    # new events still apply under the kept rules
    extra = Sale(f"{skus[0]}-after", skus[0], "dc-east", 1, now_us())
    engine.produce([extra])
    want_kept = expected(skus[0], [*events[skus[0]], extra], now=now_us(), rules=v2)
    kept = wait_for(lambda: observed_many(engine, [skus[0]])[skus[0]], lambda seen: seen == want_kept)
    assert kept == want_kept
    assert engine.get(f"/v1/availability/{skus[0]}").json()["rules_version"] == v2.version

    replace_rules(engine, RULES_V2)  # fixed: the report goes away
    fixed = wait_for(lambda: engine.get("/readyz", key="").json()["checks"]["rules"]["detail"],
                     lambda d: "refused" not in d, timeout=15)
    assert fixed == f"rules {v2.version} active"


# RULES_V2, and web promises what is on its way (contract section 7)
PROPOSED = RULES_V2.replace("    node_buffer: {store: 1}\n", "    node_buffer: {store: 1}\n    future_supply: true\n") \
    + "promise:\n  lead_days: {dc: 1}\n"


def test_preview_matches_what_applying_then_shows(engine: Engine, tmp_path: Path) -> None:
    skus = [f"TV-preview-{engine.name}-{i:02d}" for i in range(25)]
    events = stock(skus)
    for i, sku in enumerate(skus[:5]):  # a purchase-order line each, 3 days on
        events[sku].append(SupplyExpected(f"{sku}-po", sku, "po-1", "dc-west", 10 * (i + 1), now_us() + 3 * DAY,
                                          now_us() - HOUR))
    engine.produce([e for sku in skus for e in events[sku]])
    v1 = load_rules(engine.rules_dir)
    want_v1 = {sku: expected(sku, events[sku], now=now_us(), rules=v1) for sku in skus}
    assert wait_for(lambda: observed_many(engine, skus), lambda seen: seen == want_v1) == want_v1

    proposed = tmp_path / "proposed"
    proposed.mkdir()
    (proposed / "rules.yaml").write_text(PROPOSED)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "avail", "rules", "preview", str(proposed), "--json"],
        env=engine.env(), capture_output=True, text=True, check=False, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["current_version"] == v1.version
    before = {sku: want_v1[sku].channels for sku in skus}
    predicted = {sku: {c: n for c, n in before[sku].items()} for sku in skus}
    for change in report["changes"]:
        predicted[change["sku"]][change["channel"]] = change["after"]
    v2 = load_rules(proposed)
    predicted = {sku: {c: n for c, n in numbers.items() if c in v2.channels} for sku, numbers in predicted.items()}
    amazon = report["channels"]["amazon"]
    assert amazon["changed"] == len(skus) and amazon["after_total"] < amazon["before_total"]
    assert report["channels"]["ebay"]["before_total"] == 0 and report["channels"]["ebay"]["after_total"] > 0

    web = report["schedules"]["channels"]["web"]  # flat before, the lines from their sellable day after
    assert (web["skus"], web["changed"], web["horizon_days"]) == (5, 5, {"before": 30, "after": 30})
    assert {c["sku"] for c in report["schedules"]["changes"]} == set(skus[:5])
    predicted_schedules = {top["sku"]: top["after"] for top in web["top"]}

    replace_rules(engine, PROPOSED)
    applied = wait_for(lambda: {sku: e.channels for sku, e in observed_many(engine, skus).items()},
                       lambda seen: seen == predicted, timeout=20)
    assert applied == predicted, flow_log(engine)

    def schedules() -> dict[str, dict[str, object]]:
        answers = [engine.get(f"/v1/availability/{sku}/schedule", channel="web") for sku in skus[:5]]
        bodies = [a.json() for a in answers if a.status_code == 200]  # 503 while the API swaps rule sets
        return {b["sku"]: {"available": b["available"], "first_date": b["today"] if b["available"] else
                           next((s["date"] for s in b["schedule"] if s["available"]), None),
                           "schedule": b["schedule"]} for b in bodies}

    served = wait_for(schedules, lambda seen: seen == predicted_schedules, timeout=10)
    assert served == predicted_schedules


def test_a_flow_started_on_broken_rules_runs_the_last_published_set(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path,
) -> None:
    engine = Engine(kafka_bootstrap, redis_url, tmp_path)
    try:
        engine.start_api()
        broken = RULES_YAML.replace("    percent: 80", "    percent: 120")
        replace_rules(engine, broken)
        engine.start_flow()  # nothing published yet: it must refuse to start, saying why
        (first,) = engine.flows
        assert first.wait(30) != 0
        assert "channels.amazon.percent: must be between 0 and 100, got 120" in flow_log(engine)
        engine.flows.clear()

        replace_rules(engine, RULES_YAML)
        engine.start_flow()
        good = load_rules(engine.rules_dir).version
        wait_for(lambda: engine.get("/readyz", key="").json()["checks"]["rules"]["detail"],
                 lambda d: d == f"rules {good} active", timeout=20)
        engine.kill_flow()

        replace_rules(engine, broken)
        engine.start_flow()
        sku = f"TV-restart-{engine.name}"
        event = Receipt(f"{sku}-1", sku, "dc-east", 10, now_us() - HOUR)
        engine.produce([event])
        answer = wait_for(lambda: engine.get(f"/v1/availability/{sku}"), lambda r: r.status_code == 200)
        assert answer.json()["rules_version"] == good
        assert answer.json()["channels"]["amazon"] == 6, flow_log(engine)  # floor(10 x 80 %) - 2 under the kept rules
        detail = engine.get("/readyz", key="").json()["checks"]["rules"]["detail"]
        assert f"still running {good}" in detail and "got 120" in detail
    finally:
        engine.stop()
