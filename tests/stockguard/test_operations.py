"""Operations files: compose stack, Docker image, dashboard and alert rules, health, logs."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import stockguard.connectors.delivery.metrics  # noqa: F401 - the deliverers' (stockguard deliver)
import stockguard.connectors.metrics  # noqa: F401 - registers every stockguard metric (both floors)
import stockguard.connectors.redis_view  # noqa: F401
import stockguard.flows.metrics  # noqa: F401
from stockguard.cli import build_parser
from stockguard.connectors.health import Health
from stockguard.observability import JsonFormatter, customer_ref, start_health_server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "stockguard.json"
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
SCRAPE = ROOT / "ops" / "prometheus" / "prometheus.yml"
METRIC = re.compile(r"\b(stockguard_[a-z_]+|up)\b")
# Served by the deliverers (`stockguard deliver`), not by `stockguard run`.
DELIVERER_METRICS = "stockguard_delivery_"


def exported_names() -> set[str]:
    names = {"up"}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            names.add(sample.name)
        names.add(metric.name)
        if metric.type == "counter":
            names.add(metric.name + "_total")
        if metric.type == "histogram":
            names |= {metric.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def dashboard_metrics() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    return {m for p in dash["panels"] for t in p.get("targets", []) for m in METRIC.findall(t["expr"])}


def rules_metrics() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {m for g in rules["groups"] for r in g["rules"] for m in METRIC.findall(r["expr"])}


def alert_rules() -> list[dict[str, object]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_dashboard_and_rules_use_only_metrics_the_code_exports() -> None:
    exported = exported_names()
    used = dashboard_metrics() | rules_metrics()
    assert len(used) > 8
    assert used - exported == set()


def test_dashboard_answers_the_operators_questions() -> None:
    titles = " ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for question in ("up", "latency", "suppressed", "surge", "lost", "lag"):
        assert question in titles


def test_the_delivery_row_shows_every_deliverer_metric() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    [row] = [p for p in panels if p["type"] == "row"]
    assert row["title"] == "Delivery" and row["gridPos"]["w"] == 24
    below = [p for p in panels if p["gridPos"]["y"] > row["gridPos"]["y"]]
    used = {m for p in below for t in p["targets"] for m in METRIC.findall(t["expr"])}
    exported = {m for m in exported_names() if m.startswith(DELIVERER_METRICS)}
    assert {m.removesuffix("_bucket") for m in used} >= {
        "stockguard_delivery_total",
        "stockguard_delivery_seconds",
        "stockguard_delivery_requests_total",
        "stockguard_delivery_consumer_lag",
        "stockguard_delivery_circuit_open",
    }
    assert used - {"up"} <= exported
    # No panel overlaps another on Grafana's 24-column grid.
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert g["x"] + g["w"] <= 24 and not mine & cells, p["title"]
        cells |= mine


def test_alert_rules_cover_the_failure_modes() -> None:
    names = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert names >= {
        "StockguardDown",
        "StockguardConsumerLagGrowing",
        "StockguardDeadLetterRate",
        "StockguardDeliveryFailures",
        "StockguardDecisionLatencyHigh",
        "StockguardConservationBroken",
        "StockguardDelivererDown",
        "StockguardDeliveryCircuitOpen",
        "StockguardDeliveryLagGrowing",
        "StockguardDeliveryStalled",
        "StockguardDeliveryLatencyHigh",
        "StockguardDeliveryDeadLetters",
        "StockguardDeliveryRateLimited",
        "StockguardDeliveryVendorErrors",
    }
    runbook = (ROOT / "docs" / "operations.md").read_text().lower()
    for name in names:
        assert f"### {name.lower()}" in runbook


def test_every_alert_has_a_severity_a_summary_and_its_runbook_section() -> None:
    for rule in alert_rules():
        name = str(rule["alert"])
        labels, notes = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and isinstance(notes, dict)
        assert labels["severity"] in ("page", "ticket"), name
        assert notes["summary"] and notes["runbook"] == f"docs/operations.md#{name.lower()}", name


def test_prometheus_scrapes_every_job_the_rules_watch() -> None:
    jobs = {j["job_name"] for j in yaml.safe_load(SCRAPE.read_text())["scrape_configs"]}
    watched = {m for r in alert_rules() for m in re.findall(r'job="([^"]+)"', str(r["expr"]))}
    assert watched == {"stockguard", "stockguard-deliver"} and watched <= jobs
    panels = json.loads(DASHBOARD.read_text())["panels"]
    shown = {m for p in panels for t in p.get("targets", []) for m in re.findall(r'job="([^"]+)"', t["expr"])}
    assert shown == watched


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_delivery_alerts_fire_and_clear_as_their_unit_tests_say() -> None:
    tests = ROOT / "ops/prometheus/tests"
    out = subprocess.run(
        ["promtool", "test", "rules", "delivery.yml"], cwd=tests, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_alert_rules_pass_promtool() -> None:
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_stack_parses_and_runs_the_cli_we_ship() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"kafka", "redis", "stockguard", "prometheus", "grafana", "loadgen", "topics", "gateway"}
    parser = build_parser()
    delivery = ("vendors", "deliver-klaviyo", "deliver-braze", "deliver-shoppingfeed", "poll-shoppingfeed")
    for name in ("stockguard", "loadgen", "topics", "gateway", "webhooks", *delivery):
        args = parser.parse_args(services[name]["command"])
        assert callable(args.func)
    # The deliverers are scraped where Prometheus looks for them, on all interfaces.
    prom = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    for name in delivery[1:4]:
        assert f"{name}:9102" in targets
        assert services[name]["environment"]["STOCKGUARD_DELIVERY__HOST"] == "0.0.0.0"  # noqa: S104 - in its container
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        assert (ROOT / mount.split(":")[0]).exists(), mount
    assert "3030:3030" in services["stockguard"]["ports"]
    # The gateway and the webhook driver share every vendor secret, and the gateway reads
    # the day's Stripe line items where the driver serves them.
    gw, hooks = services["gateway"]["environment"], services["webhooks"]["environment"]
    assert gw == hooks and gw["STOCKGUARD_GATEWAY__HOST"] == "0.0.0.0"  # noqa: S104 - in its container
    assert gw["STOCKGUARD_STRIPE__API_BASE"] == "http://webhooks:12111"
    assert "8080:8080" in services["gateway"]["ports"]
    from stockguard.config.settings import load_settings
    from stockguard.webhooks import shopify_locations

    s = load_settings(env={k: str(v) for k, v in gw.items()})
    assert dict(s.shopify.locations) == shopify_locations(("WH-PARIS", "WH-LYON", "WH-LILLE"))


def test_image_entrypoint_runs_the_readme_demo_command() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", docker, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (.+)$", docker, re.M).group(1))  # type: ignore[union-attr]
    assert entry + cmd == ["stockguard", "demo"]
    first_lines = (ROOT / "README.md").read_text().splitlines()[:6]
    assert any("stockguard demo" in line for line in first_lines)
    assert "USER stockguard" in docker and "EXPOSE 3030" in docker
    assert "FROM python:3.12-slim-bookworm" in docker  # glibc: bytewax ships manylinux wheels only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback test server
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_health_endpoints_follow_the_input_loop_and_kafka() -> None:
    h = Health(stall_s=0.5)
    port = free_port()
    server = start_health_server("127.0.0.1", port, h)
    try:
        base = f"http://127.0.0.1:{port}"
        assert get(base + "/healthz")[0] == 503
        h.beat()
        assert get(base + "/healthz")[0] == 200
        assert get(base + "/readyz")[0] == 503
        h.kafka_ok(True)
        h.assigned_partition()
        status, body = get(base + "/readyz")
        assert status == 200 and body["assigned_partitions"] == 1
        h.kafka_ok(False, "consume: broker down")
        assert get(base + "/readyz")[0] == 503
    finally:
        server.shutdown()


def test_json_logs_and_customer_refs() -> None:
    rec = logging.LogRecord("stockguard", logging.INFO, __file__, 1, "decided %d", (3,), None)
    rec.sg_customer = customer_ref("cust-1", b"k1")
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["msg"] == "decided 3" and doc["level"] == "info" and "cust-1" not in json.dumps(doc)
    assert customer_ref("cust-1", b"k1") == doc["customer"] != customer_ref("cust-1", b"k2")


def test_the_configuration_reference_lists_every_setting() -> None:
    from stockguard.config.settings import Settings, describe

    doc = (ROOT / "docs" / "operations.md").read_text()
    for name, _value, env in describe(Settings()):
        assert f"`{name}`" in doc and f"`{env}`" in doc, name
