from prometheus_client import CollectorRegistry, generate_latest

from availability_api.metrics import ApiMetrics, FlowStatsCollector

STATS = {"applied": "1200", "duplicate": "7", "rejected:not_json": "3", "rejected:bad_qty": "2",
         "undeclared_node_events": "5", "writes": "900", "something_new": "1"}


def render(stats: dict[str, str] | None, rules_version: str | None = None) -> str:
    registry = CollectorRegistry()
    collector = FlowStatsCollector()
    registry.register(collector)
    collector.update(stats, rules_version)
    return generate_latest(registry).decode()


def test_flow_counters_are_exposed_with_labels() -> None:
    text = render(STATS)
    assert 'avail_flow_events_total{status="applied"} 1200.0' in text
    assert 'avail_flow_events_total{status="duplicate"} 7.0' in text
    assert 'avail_flow_events_rejected_total{code="bad_qty"} 2.0' in text
    assert 'avail_flow_events_rejected_total{code="not_json"} 3.0' in text
    assert "avail_flow_undeclared_node_events_total 5.0" in text
    assert "avail_flow_redis_writes_total 900.0" in text
    assert "avail_flow_stats_up 1.0" in text
    assert "something_new" not in text


def test_missing_counters_read_zero_and_unreadable_stats_say_so() -> None:
    assert 'avail_flow_events_total{status="duplicate"} 0.0' in render({"applied": "1"})
    text = render(None)
    assert "avail_flow_stats_up 0.0" in text
    assert "avail_flow_events_total" not in text


def test_requests_are_counted_by_route_template_and_status() -> None:
    metrics = ApiMetrics()
    metrics.observe("/v1/availability/{sku:path}", "GET", 200, 0.002)
    metrics.observe("/v1/availability/{sku:path}", "GET", 200, 0.004)
    metrics.observe("/v1/availability/{sku:path}", "GET", 404, 0.001)
    text = metrics.render(STATS).decode()
    assert 'avail_api_requests_total{method="GET",route="/v1/availability/{sku:path}",status="200"} 2.0' in text
    assert 'avail_api_requests_total{method="GET",route="/v1/availability/{sku:path}",status="404"} 1.0' in text
    assert ('avail_api_request_duration_seconds_bucket{le="0.0025",method="GET",'
            'route="/v1/availability/{sku:path}",status="200"} 1.0') in text
    assert 'avail_flow_events_total{status="applied"} 1200.0' in text


def test_each_app_has_its_own_registry() -> None:
    first, second = ApiMetrics(), ApiMetrics()
    first.observe("/healthz", "GET", 200, 0.001)
    assert "/healthz" not in second.render(None).decode()


def test_consumer_lag_is_a_gauge_per_topic_and_partition() -> None:
    text = render({"consumer_lag:pos.sales:0": "120", "consumer_lag:pos.sales:1": "0",
                   "consumer_lag:eu:wms.picks:3": "7", "consumer_lag:broken": "5"})
    assert "# TYPE avail_flow_consumer_lag gauge" in text
    assert 'avail_flow_consumer_lag{partition="0",topic="pos.sales"} 120.0' in text
    assert 'avail_flow_consumer_lag{partition="1",topic="pos.sales"} 0.0' in text
    assert 'avail_flow_consumer_lag{partition="3",topic="eu:wms.picks"} 7.0' in text, "a topic may hold colons"
    assert "broken" not in text


def test_the_running_rules_version_is_an_info_gauge() -> None:
    text = render({"applied": "1"}, "2026-11-23T10:00:00Z-3fa9c2")
    assert "# TYPE avail_rules_info gauge" in text
    assert 'avail_rules_info{version="2026-11-23T10:00:00Z-3fa9c2"} 1.0' in text
    assert "avail_rules_info{" not in render({"applied": "1"}), "no rules published yet: no sample"
    assert "avail_rules_info" not in render(None, "v1"), "Redis did not answer: nothing but stats_up"


def test_the_app_metrics_render_the_rules_version_given() -> None:
    assert 'avail_rules_info{version="v7"} 1.0' in ApiMetrics().render(STATS, "v7").decode()
