"""deploy/: the compose file, HAProxy, Prometheus, Grafana and Kubernetes agree with the code.

No Docker engine or cluster runs here; these tests parse the files and check
what would otherwise only fail in production: ports against the Dockerfile and
the Settings defaults, environment variable names against csms.config, every
node behind the load balancer and scraped, every metric on the dashboard
exported by csms.monitoring.metrics.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from csms.config import ENV_NAMES, Settings
from csms.monitoring.metrics import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# Variables the deployment sets that are not Settings: the node's name in a cluster.
EXTRA_ENV = {"CSMS_NODE_ID"}


def _dockerfile_ports() -> set[int]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^EXPOSE\s+(.+)$", text, re.MULTILINE)
    assert match, "Dockerfile has no EXPOSE"
    return {int(p) for p in match.group(1).split()}


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^ENV\s+(.+)$", text, re.MULTILINE)
    assert match
    return dict(pair.split("=", 1) for pair in match.group(1).split())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def _csms_nodes(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image", "").startswith("csms") and service.get("command") == ["serve"]
    }


def test_ports_of_the_image_are_the_settings_defaults() -> None:
    defaults = Settings()
    assert {defaults.port, defaults.api_port} <= _dockerfile_ports()
    env = _dockerfile_env()
    assert int(env["CSMS_PORT"]) == defaults.port
    assert int(env["CSMS_API_PORT"]) == defaults.api_port


def test_compose_has_postgres_a_kafka_broker_and_two_csms_nodes_on_one_database(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "redpanda" in services["redpanda"]["image"]
    nodes = _csms_nodes(compose)
    assert len(nodes) >= 2
    urls = {node["environment"]["DATABASE_URL"] for node in nodes.values()}
    assert len(urls) == 1 and next(iter(urls)).startswith("postgresql://")
    ids = [node["environment"]["CSMS_NODE_ID"] for node in nodes.values()]
    assert len(set(ids)) == len(ids) == len(nodes)
    for node in nodes.values():
        env = node["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "redpanda:9092"
        assert env["CSMS_MIGRATE_ON_START"] == "false"  # the one-shot "migrate" runs them
        assert node["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert (DEPLOY / node["build"]["context"] / node["build"]["dockerfile"]).is_file()
        assert {int(env["CSMS_PORT"]), int(env["CSMS_API_PORT"])} <= _dockerfile_ports()
        assert {int(p) for p in node["expose"]} >= {
            int(env["CSMS_PORT"]),
            int(env["CSMS_API_PORT"]),
        }
        unknown = {k for k in env if k not in ENV_NAMES.values()} - EXTRA_ENV
        assert not unknown, f"not settings of csms.config: {unknown}"
        assert "migrate" in node["depends_on"] and "kafka-init" in node["depends_on"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["kafka-init"]["command"][0] == "kafka-init"


def test_haproxy_spreads_websockets_by_least_connections_over_every_node(
    compose: dict[str, Any],
) -> None:
    haproxy = compose["services"]["haproxy"]
    mounted = [v.split(":")[0] for v in haproxy["volumes"]]
    assert "./haproxy.cfg" in mounted
    config = (DEPLOY / "haproxy.cfg").read_text()
    backends = dict(re.findall(r"^backend (\S+)\n(.*?)(?=^\S|\Z)", config, re.M | re.S))
    nodes = _csms_nodes(compose)
    ports = {
        "csms_ocpp": Settings().port,
        "csms_ocpp_tls": Settings().tls_port,
        "csms_api": Settings().api_port,
    }
    for backend, port in ports.items():
        body = backends[backend]
        assert re.search(r"^\s+balance leastconn$", body, re.M), backend
        servers = dict(re.findall(r"^\s+server (\S+) (\S+)", body, re.M))
        assert set(servers) == set(nodes), backend
        assert all(address == f"{name}:{port}" for name, address in servers.items())
    assert "timeout tunnel" in config  # WebSockets live for days
    published = {int(p.split(":")[0]) for p in haproxy["ports"]}
    assert published >= set(ports.values())


def test_prometheus_scrapes_every_node_and_grafana_is_provisioned(
    compose: dict[str, Any],
) -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "csms")
    assert job["metrics_path"] == "/metrics"
    targets = set(job["static_configs"][0]["targets"])
    assert targets == {f"{name}:{Settings().api_port}" for name in _csms_nodes(compose)}
    grafana = compose["services"]["grafana"]
    sources = [v.split(":")[0] for v in grafana["volumes"]]
    for source in sources:
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def _exported_metric_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
    # Histograms without observations still export their _bucket/_sum/_count series.
    for family in REGISTRY.collect():
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_every_metric_on_the_grafana_dashboard_is_exported() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/csms-fleet.json").read_text())
    exported = _exported_metric_names()
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            used |= set(re.findall(r"\bcsms_[a-z_]+", target["expr"]))
    assert used, "the dashboard shows no CSMS metric"
    missing = used - exported
    assert not missing, f"not exported by csms.monitoring.metrics: {missing}"
    assert {"csms_chargers_connected", "csms_sessions_active"} <= used


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    text = (DEPLOY / "kubernetes/csms.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def _one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name)
    return found[0]


def test_kubernetes_runs_replicas_with_probes_ports_and_config(
    manifests: list[dict[str, Any]],
) -> None:
    kustomization = yaml.safe_load((DEPLOY / "kubernetes/kustomization.yaml").read_text())
    assert kustomization["resources"] == ["csms.yaml"]
    deployment = _one(manifests, "Deployment", "csms")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 60  # a draining node needs time
    (container,) = pod["containers"]
    assert container["image"].split(":")[0] == "csms" and container["args"] == ["serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    defaults = Settings()
    assert ports == {"ocpp": defaults.port, "ocpp-tls": defaults.tls_port, "api": defaults.api_port}
    assert {ports["ocpp"], ports["api"]} <= _dockerfile_ports()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe in container, probe
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "api"}
    node_id = next(e for e in container["env"] if e["name"] == "CSMS_NODE_ID")
    assert node_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
    config = _one(manifests, "ConfigMap", sources["configMapRef"])
    assert sources["secretRef"] == "csms-secrets"  # created out of band, never committed
    assert not [m for m in manifests if m["kind"] == "Secret"]
    unknown = set(config["data"]) - set(ENV_NAMES.values())
    assert not unknown, f"not settings of csms.config: {unknown}"
    assert int(config["data"]["CSMS_PORT"]) == ports["ocpp"]
    assert int(config["data"]["CSMS_API_PORT"]) == ports["api"]
    assert int(config["data"]["CSMS_TLS_PORT"]) == ports["ocpp-tls"]
    assert config["data"]["CSMS_MIGRATE_ON_START"] == "false"
    migrate = _one(manifests, "Job", "csms-migrate")
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_kubernetes_services_and_ingress_reach_the_pods_ports(
    manifests: list[dict[str, Any]],
) -> None:
    deployment = _one(manifests, "Deployment", "csms")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {
        p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    services = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Service"}
    for service in services.values():
        assert service["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    tls = services["csms-ocpp-tls"]
    assert tls["spec"]["type"] == "LoadBalancer"  # layer 4: TLS ends at the CSMS
    ingress = _one(manifests, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["haproxy.org/load-balance"] == "leastconn"
    assert "haproxy.org/timeout-tunnel" in annotations
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = services[backend["name"]]
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert any(
        p["path"] == Settings().ocpp_path_prefix
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    )
