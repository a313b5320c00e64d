"""Every metric the README and docs/ name is one /metrics exports, spelled as Prometheus sees it."""

from __future__ import annotations

import re
from pathlib import Path

from availability_api.metrics import ApiMetrics

ROOT = Path(__file__).resolve().parents[3]
MENTION = re.compile(r"(?<![\w.])(avail_[a-z_]+)(?=[`{ ])")
STATS = {"applied": "3", "duplicate": "1", "rejected:not_json": "2", "feed_backlog:web": "5", "writes": "4",
         "undeclared_node_events": "0", "rules_reloaded": "1", "rules_reload_failed": "0", "rebuilds": "0",
         "lost_sku_writes": "0", "applied_by:pos.sales:sale": "3", "rejected_from:pos.sales:not_json": "2",
         "oversells:web": "1", "oversold_units:web": "2", "phantom_sales:store": "1", "phantom_sale_units:store": "1",
         "deltas_published:web": "4", "redis_write_le:0.001": "2", "redis_write_le:0.01": "1",
         "redis_write_le:+Inf": "1", "redis_write_count": "4", "redis_write_us_sum": "3500000",
         "deltas_coalesced:web": "2", "deltas_throttled:web": "4", "consumer_lag:pos.sales:0": "3"}


def exported() -> set[str]:
    metrics = ApiMetrics()
    metrics.observe("/v1/availability/{sku:path}", "GET", 200, 0.01)
    text = metrics.render(STATS, "v1").decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("avail_")}
    return names | {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}


def test_every_metric_the_docs_name_is_exported_under_that_name() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {(path.name, name) for path in documents for name in MENTION.findall(path.read_text())}
    assert named, "the docs name metrics"
    known = exported()
    assert not sorted(f"{doc}: {name}" for doc, name in named if name not in known)


def test_labelled_counters_split_topic_names_that_hold_colons() -> None:
    text = ApiMetrics().render({"applied_by:acme:pos.sales:sale": "7", "rejected_from:eu:wms:not_json": "2"}).decode()
    assert 'avail_flow_events_applied_by_kind_total{topic="acme:pos.sales",type="sale"} 7.0' in text
    assert 'avail_flow_events_rejected_by_topic_total{code="not_json",topic="eu:wms"} 2.0' in text or \
        'avail_flow_events_rejected_by_topic_total{topic="eu:wms",code="not_json"} 2.0' in text


def test_write_times_are_a_cumulative_histogram() -> None:
    text = ApiMetrics().render(STATS).decode()
    assert 'avail_flow_redis_write_seconds_bucket{le="0.001"} 2.0' in text
    assert 'avail_flow_redis_write_seconds_bucket{le="0.0025"} 2.0' in text
    assert 'avail_flow_redis_write_seconds_bucket{le="0.01"} 3.0' in text
    assert 'avail_flow_redis_write_seconds_bucket{le="+Inf"} 4.0' in text
    assert "avail_flow_redis_write_seconds_sum 3.5" in text
    assert 'avail_feed_deltas_published_total{channel="web"} 4.0' in text
