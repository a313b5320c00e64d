from prometheus_client import CollectorRegistry, generate_latest

from availability_api.metrics import ApiMetrics, FlowStatsCollector

STATS = {"applied": "1200", "duplicate": "7", "rejected:not_json": "3", "rejected:bad_qty": "2",
         "undeclared_node_events": "5", "writes": "900", "something_new": "1"}


def render(stats: dict[str, str] | None) -> str:
    registry = CollectorRegistry()
    collector = FlowStatsCollector()
    registry.register(collector)
    collector.update(stats)
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
