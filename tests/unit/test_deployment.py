"""docker-compose.yml checked against what the code reads: Docker cannot run where the tests do.

Every ``AVAIL_*`` variable it sets is a setting of the process it is given to; the topics
it creates are the flow's defaults; the flow processes form one coherent Bytewax cluster
on one recovery store; the API replicas sit behind the load balancer; the Redis Cluster
profile is 3 masters with a replica each, reachable by the URL the header gives.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine_settings import ApiSettings, FlowSettings
from projection.connect import check_url, parse_cluster_url

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
FLOWS = sorted(name for name in SERVICES if re.fullmatch(r"flow-\d+", name))
CLUSTER_NODES = sorted(name for name in SERVICES if name.startswith("redis-node-"))
COMPOSE_ONLY = {"AVAIL_DEV_API_KEY"}  # read by the api service's start script, not by the engine


def settings_of(model: type[Any]) -> set[str]:
    return {f"AVAIL_{name.upper()}" for name in model.model_fields}


def environment(service: str) -> dict[str, str]:
    return {key: str(value) for key, value in (SERVICES[service].get("environment") or {}).items()}


def default(value: str) -> str:
    """``${NAME:-default}`` → default."""
    found = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return found[1] if found else value


@pytest.mark.parametrize(("service", "model"), [*((flow, FlowSettings) for flow in FLOWS), ("api", ApiSettings)])
def test_every_avail_variable_given_is_a_setting_the_process_reads(service: str, model: type[Any]) -> None:
    given = {key for key in environment(service) if key.startswith("AVAIL_")}
    assert given - COMPOSE_ONLY <= settings_of(model), given - COMPOSE_ONLY - settings_of(model)


@pytest.mark.parametrize("service", [*FLOWS, "api"])
def test_the_defaults_given_are_valid_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {key: default(value) for key, value in environment(service).items() if key.startswith("AVAIL_")}
    values.pop("AVAIL_API_KEYS", None)  # empty by default: the start script puts the development key in
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    model = ApiSettings if service == "api" else FlowSettings
    model()


def test_the_topics_created_are_the_flows_defaults() -> None:
    script = SERVICES["topics"]["command"][-1]
    created = set(re.search(r"for topic in ([^;]+);", script)[1].split())  # type: ignore[index]
    flow = FlowSettings()
    assert created == {*flow.topic_roles(), flow.topic_dlq}


def test_kafka_is_version_4_in_kraft_mode() -> None:
    kafka = SERVICES["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    assert SERVICES["topics"]["image"] == kafka["image"]
    assert "controller" in environment("kafka")["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in key for key in environment("kafka"))


def test_the_flow_processes_form_one_cluster_on_one_recovery_store() -> None:
    assert len(FLOWS) >= 2  # noqa: PLR2004
    addresses = {environment(flow)["FLOW_ADDRESSES"] for flow in FLOWS}
    assert len(addresses) == 1, "every process must get the same address list"
    listed = addresses.pop().split(";")
    assert [a.split(":")[0] for a in listed] == FLOWS, "process i is flow-i, in order"
    stores = set()
    for index, flow in enumerate(FLOWS):
        service = SERVICES[flow]
        assert service["hostname"] == flow
        command = service["command"][-1]
        process_id = int(re.search(r"-i (\d+)", command)[1])  # type: ignore[index]
        assert process_id == index and "$$FLOW_ADDRESSES" in command.replace("$FLOW", "$$FLOW")
        assert 0 <= process_id < len(listed) and all(re.fullmatch(r"[\w.-]+:\d+", a) for a in listed)
        recovery = environment(flow)["AVAIL_RECOVERY_DIR"]
        mounts = [v for v in service["volumes"] if not v.startswith(".")]
        assert any(recovery.startswith(m.split(":")[1]) for m in mounts)
        stores.add(tuple(mounts))
    assert len(stores) == 1, "one recovery volume shared by every process: any process count resumes from it"


def test_api_replicas_sit_behind_the_load_balancer_with_streams_unbuffered() -> None:
    assert SERVICES["api"]["deploy"]["replicas"] >= 2  # noqa: PLR2004
    assert "ports" not in SERVICES["api"], "replicas publish no port; the load balancer does"
    lb = SERVICES["lb"]
    config_path = next(v.split(":")[0] for v in lb["volumes"] if "nginx.conf" in v)
    config = (ROOT / config_path).read_text()
    assert "server api:8000;" in config and "proxy_buffering off;" in config
    assert lb["depends_on"]["api"]["condition"] == "service_healthy"


def test_every_dependency_and_healthcheck_refers_to_something_real() -> None:
    for name, service in SERVICES.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in SERVICES, f"{name} depends on unknown {needed}"
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in SERVICES[needed], f"{name} waits for {needed} to be healthy: it has no check"
            if "profiles" in SERVICES[needed] and "profiles" not in service:
                assert how.get("required") is False, f"{name} needs {needed}, which only runs in a profile"
    for needed in ("kafka", "redis", "api", "lb", *CLUSTER_NODES):
        assert "healthcheck" in SERVICES[needed]


def test_the_redis_cluster_profile_is_three_masters_with_a_replica_each_at_the_url_documented() -> None:
    assert len(CLUSTER_NODES) == 6  # noqa: PLR2004
    for node in CLUSTER_NODES:
        command = SERVICES[node]["command"]
        assert command[command.index("--cluster-enabled") + 1] == "yes"
        assert command[command.index("--cluster-announce-hostname") + 1] == node
        assert SERVICES[node]["profiles"] == ["redis-cluster"]
    init = SERVICES["redis-cluster-init"]
    assert set(init["depends_on"]) == set(CLUSTER_NODES)
    assert "--cluster-replicas 1" in init["command"][-1]
    header = (ROOT / "docker-compose.yml").read_text().split("\nname:")[0]
    url = re.search(r"AVAIL_REDIS_URL=(redis\+cluster://\S+)", header)[1]  # type: ignore[index]
    check_url(url)
    assert {host for host, _ in parse_cluster_url(url).nodes} <= set(CLUSTER_NODES)


def test_the_dashboard_queries_only_metrics_the_api_exports() -> None:
    from tests.unit.availability_api.test_metric_names import exported

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "availability.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\b(avail_[a-z_]+)\b", target["expr"])}
    assert len(queried) >= 10  # noqa: PLR2004
    assert queried <= exported(), sorted(queried - exported())
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {datasource["datasources"][0]["uid"]}
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_prometheus_scrapes_every_api_replica_with_a_key() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["dns_sd_configs"] == [{"names": ["api"], "type": "A", "port": 8000}]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["prometheus"]["volumes"] if v.startswith("./")}
    key_file = mounted[job["authorization"]["credentials_file"]]
    assert len((ROOT / key_file).read_text().strip()) >= 16  # noqa: PLR2004 - the API refuses shorter keys
    assert SERVICES["grafana"]["profiles"] == SERVICES["prometheus"]["profiles"] == ["monitoring"]
