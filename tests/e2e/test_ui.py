"""The operations page (/ui) in headless Chromium, on a real flow and API.

Driven by Playwright's Python package with Debian's ``chromium`` (Playwright's own
browser download is not used). Without a chromium on PATH the module is skipped,
unless AVAIL_REQUIRE_BROWSER=1 (as ``.ci/run`` sets): then it fails.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from atp.events import Receipt, Reserve, Topic
from tests.integration.test_flow import HOUR, now_us
from tests.support.engine import ADMIN_KEY, READ_KEY, Engine, flow_log, running_engine, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("AVAIL_REQUIRE_BROWSER") != "1":
    pytest.skip("no chromium on PATH (apt-get install chromium); set AVAIL_REQUIRE_BROWSER=1 to fail instead",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

SKU = "TV-55-ui"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with running_engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("ui")) as engine:
        t = now_us() - HOUR
        engine.produce([
            Receipt("ui-1", SKU, "dc-east", 40, t), Receipt("ui-2", SKU, "dc-west", 9, t + 1),
            Receipt("ui-3", SKU, "store-001", 6, t + 2), Receipt("ui-4", SKU, "store-002", 3, t + 3),
            Reserve("ui-5", SKU, "r-ui-5", "web", 2, t + 4),
        ])
        wait_for(lambda: engine.get(f"/v1/availability/{SKU}"), lambda r: r.status_code == 200 and
                 r.json()["nodes"] and r.json()["as_of"] is not None)
        yield engine


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None, "AVAIL_REQUIRE_BROWSER=1 and no chromium on PATH: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(engine: Engine, browser: Browser) -> Iterator[Page]:
    assert engine.api is not None
    context = browser.new_context(base_url=engine.api.base_url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    outside = []
    opened.on("request", lambda request: outside.append(request.url)
              if not request.url.startswith(engine.api.base_url) else None)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto("/ui")
    yield opened
    context.close()
    assert not outside, f"the page fetched from outside the API: {outside}"
    assert not errors, f"the page's script failed: {errors}"


def use_key(page: Page, key: str) -> None:
    page.get_by_test_id("api-key").fill(key)
    page.get_by_test_id("use-key").click()


def search(page: Page, sku: str) -> None:
    page.get_by_test_id("sku-input").fill(sku)
    page.get_by_test_id("sku-search").click()


def test_a_sku_search_shows_the_numbers_the_api_gives(engine: Engine, page: Page, tmp_path: Path) -> None:
    use_key(page, ADMIN_KEY)
    expect(page.get_by_test_id("key-status")).to_contain_text("Key accepted (admin)", timeout=WAIT_MS)
    search(page, SKU)
    table = page.get_by_test_id("node-table")
    expect(table).to_be_visible(timeout=WAIT_MS)
    answer = engine.get(f"/v1/availability/{SKU}").json()
    for node in answer["nodes"]:
        row = table.locator(f"tr[data-node='{node['node']}']")
        for field in ("on_hand", "reserved", "in_transit", "unsellable", "safety_stock", "atp"):
            assert row.locator(f"td[data-field='{field}']").inner_text() == str(node[field]), (node["node"], field)
    for channel, shown in answer["channels"].items():
        assert table.locator(f"td[data-channel-total='{channel}']").inner_text() == str(shown), channel
        explained = engine.get(f"/v1/availability/{SKU}/explain", channel=channel).json()
        for node in explained["nodes"]:
            cell = table.locator(f"tr[data-node='{node['node']}'] td[data-channel='{channel}']").inner_text()
            assert cell == (str(node["contribution"]) if node["eligible"] else "—"), (channel, node["node"])
    page.screenshot(path=tmp_path / "ui.png", full_page=True)


def test_the_explain_view_matches_the_api(engine: Engine, page: Page) -> None:
    use_key(page, READ_KEY)
    expect(page.get_by_test_id("key-status")).to_contain_text("operations panels need an admin key",
                                                                timeout=WAIT_MS)
    search(page, SKU)
    page.get_by_test_id("explain-channel").select_option("amazon")
    explained = engine.get(f"/v1/availability/{SKU}/explain", channel="amazon").json()
    final = page.get_by_test_id("explain-final")
    expect(final).to_contain_text(f"final {explained['final']} = shown", timeout=WAIT_MS)
    steps = page.get_by_test_id("explain-steps")
    expect(steps.locator("li").first).to_contain_text(f"= {explained['pool']}")
    for step in explained["steps"]:
        expect(steps.locator(f"li[data-knob='{step['knob']}'] b")).to_have_text(str(step["value"]))
    rows = page.get_by_test_id("explain-nodes").locator("tbody tr")
    expect(rows).to_have_count(len(explained["nodes"]))


def test_an_unknown_sku_and_a_wrong_key_say_so(engine: Engine, page: Page) -> None:
    use_key(page, "not-a-key-of-this-engine")
    expect(page.get_by_test_id("key-status")).to_contain_text("That API key was not accepted (401",
                                                                timeout=WAIT_MS)
    use_key(page, READ_KEY)
    search(page, "NO-SUCH-SKU-ui")
    expect(page.get_by_test_id("sku-error")).to_contain_text("NO-SUCH-SKU-ui", timeout=WAIT_MS)


def test_a_poison_event_appears_among_the_recent_rejects(engine: Engine, page: Page) -> None:
    use_key(page, ADMIN_KEY)
    engine.produce_raw(Topic.POS_SALES, b'{"event_id": "ui-poison-1", "sku": "TV-55-ui", "qty": "many"')
    engine.producer.flush(10)
    row = page.get_by_test_id("rejects").locator("tbody tr").filter(has_text="not_json")
    expect(row.first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("dlq-command")).to_contain_text("avail dlq export")
    expect(page.get_by_test_id("rules-version")).not_to_have_text("none")


def test_a_refused_rules_change_shows_with_its_file_and_line(engine: Engine, page: Page) -> None:
    use_key(page, ADMIN_KEY)
    expect(page.get_by_test_id("rules-last")).to_be_visible(timeout=WAIT_MS)
    rules = engine.rules_dir / "rules.yaml"
    good = rules.read_text()
    broken = good.replace("    percent: 80", "    percent: 180")
    line = broken.splitlines().index("    percent: 180") + 1
    try:
        staged = rules.with_suffix(".tmp")
        staged.write_text(broken)
        staged.replace(rules)
        refused = page.get_by_test_id("rules-refused")
        expect(refused).to_contain_text(re.compile(rf"rules\.yaml:{line} channels\.amazon\.percent"), timeout=WAIT_MS)
        # the page shows what readiness reports (read before the good rules go back)
        assert "refused" in engine.get("/readyz", key="").json()["checks"]["rules"]["detail"], flow_log(engine)
    finally:
        staged = rules.with_suffix(".tmp")
        staged.write_text(good)
        staged.replace(rules)
