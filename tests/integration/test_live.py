"""End to end on the real Kafka broker and Redis: live decisions equal a replay's.

`stockguard run` runs as a subprocess (1 worker, 2 workers, 2 processes, a kill -9 and a
restart); each test uses its own topics. Input is produced in phases (catalog and stock,
then orders, then triggers, then stock changes) so that the events that a decision depends
on precede it on every partition, as the live contract assumes; budgets are made
non-binding because the order of triggers *across* partitions is not defined.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from stockguard.config.settings import Settings, load_settings, topic_env
from stockguard.connectors.files import CollectSink
from stockguard.connectors.kafka import DeliveryError, KafkaOutput
from stockguard.connectors.redis_view import RedisViewSink
from stockguard.demo import to_raw
from stockguard.flows.dataflow import build_flow
from stockguard.flows.records import CampaignView, OutRecord, RawRecord, StockView
from stockguard.live import create_topics
from stockguard.sim import SimConfig, simulate
from tests.conftest import ROOT, SERVICES, Services

pytestmark = pytest.mark.integration

STOCKGUARD = [sys.executable, "-m", "stockguard.cli"]
PROBE_SKU = "PROBE-SKU"

Message = tuple[str, str | None, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    while True:
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p


def isolated(services: Services, **extra: str) -> tuple[Settings, dict[str, str]]:
    """Settings and env for a test with its own topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    env.update(topic_env(f"it-{uuid.uuid4().hex[:8]}."))
    env["KAFKA_BOOTSTRAP_SERVERS"] = services.kafka
    env["REDIS_URL"] = services.redis
    env["STOCKGUARD_KAFKA__PARTITIONS"] = "2"
    env["STOCKGUARD_RULES__SENDS_PER_UNIT"] = "100000"
    env["STOCKGUARD_EPOCH_INTERVAL"] = "1s"
    env["STOCKGUARD_SNAPSHOT_INTERVAL"] = "1s"
    env["PYTHONPATH"] = str(ROOT)
    # Two consecutive ports each (process id is added with -i).
    env["STOCKGUARD_METRICS_PORT"] = str(free_port_pair())
    env["STOCKGUARD_HEALTH_PORT"] = str(free_port_pair())
    env.update(extra)
    settings = load_settings(env=env)
    for topic, outcome in create_topics(settings):
        assert not outcome.startswith("failed"), (topic, outcome)
    return settings, env


def phases(seed: int = 5, start_ts: int | None = None) -> list[list[Message]]:
    """Split a small simulated day into dependency-ordered phases."""
    cfg = SimConfig(
        seed=seed, hours=3.0, skus=60, customers=400, events_per_hour=1500, campaign_start_h=1.25, campaign_hours=1.0
    )
    if start_ts is not None:
        cfg = dataclasses.replace(cfg, start_ts=start_ts)
    a: list[Message] = []
    b: list[Message] = []
    c: list[Message] = []
    d: list[Message] = []
    seen_ids: set[str] = set()
    for topic, key, value in simulate(cfg):
        if topic in ("catalog.products", "marketing.campaigns"):
            a.append((topic, key, value))
        elif topic == "inventory.stock":
            first = isinstance(value, dict) and value.get("ts") == cfg.start_ts and value.get("type") == "level"
            (a if first else d).append((topic, key, value))
        elif topic in ("shop.orders", "shop.clickstream"):
            if isinstance(value, dict) and isinstance(value.get("lines"), list):
                # Unlocated lines go to the location with the highest ATP at that moment,
                # which depends on the order *across* order partitions: pin them here.
                for line in value["lines"]:
                    if isinstance(line, dict) and "location" not in line:
                        line["location"] = "WH-PARIS"
            b.append((topic, key, value))
        elif topic == "marketing.triggers":
            tid = value.get("trigger_id") if isinstance(value, dict) else None
            if tid in seen_ids:
                continue  # duplicates are tested elsewhere; here ids identify decisions
            if tid is not None:
                seen_ids.add(tid)
            c.append((topic, key, value))
    # Take recently approved skus out of stock at the end: retractions.
    end = cfg.start_ts + int(cfg.hours * 3_600_000)
    skus = sorted({v["sku"] for t, _k, v in a if t == "catalog.products"})
    for i, sku in enumerate(skus[::3]):
        d.append(
            (
                "inventory.stock",
                sku,
                {
                    "event_id": f"z-{i}",
                    "ts": end + i,
                    "type": "level",
                    "sku": sku,
                    "location": "WH-PARIS",
                    "on_hand": 0,
                    "reserved": 0,
                },
            )
        )
    return [a, b, c, d]


def renamed(settings: Settings, msgs: list[Message]) -> list[Message]:
    names = settings.topics.from_contract()
    return [(names[topic], key, value) for topic, key, value in msgs]


def produce(kafka: str, msgs: list[Message]) -> None:
    p = Producer({"bootstrap.servers": kafka, "linger.ms": 5, "enable.idempotence": True})
    for i, (topic, key, value) in enumerate(msgs):
        data = value.encode() if isinstance(value, str) else orjson.dumps(value)
        p.produce(topic, data, key)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def replay_outputs(settings: Settings, msgs: list[Message]) -> list[OutRecord]:
    """Decide the same messages with the file-less replay path, in the given order."""
    out: list[OutRecord] = []
    records = [to_raw(topic, key, value, i) for i, (topic, key, value) in enumerate(msgs)]
    run_main(build_flow(settings, {"replay": TestingSource(records)}, {"out": TestingSink(out)}))  # type: ignore[no-untyped-call]
    return out


def signature(settings: Settings, records: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    t = settings.topics
    approved = set()
    suppressed = set()
    retracted = set()
    dlq: Counter[str] = Counter()
    for topic, m in records:
        if m.get("customer_id") == "probe-customer":
            continue
        if topic == t.approved:
            approved.add((m["trigger_id"], m["decision"], tuple(m["skus"])))
        elif topic == t.suppressed:
            suppressed.add((m["trigger_id"], m["reason"]))
        elif topic == t.retracted:
            retracted.add(m["trigger_id"])
        elif topic == t.dlq:
            dlq[m["error"]] += 1
    return {"approved": approved, "suppressed": suppressed, "retracted": retracted, "dlq": dlq}


def decided_all(settings: Settings, expected: dict[str, Any]) -> Callable[[list[tuple[str, dict[str, Any]]]], bool]:
    """Tell, from the output records so far, whether every expected decision has come out."""
    n_expected = len(expected["approved"]) + len(expected["suppressed"])

    def done(recs: list[tuple[str, dict[str, Any]]]) -> bool:
        sig = signature(settings, recs)
        return len(sig["approved"]) + len(sig["suppressed"]) >= n_expected and len(sig["retracted"]) >= len(
            expected["retracted"]
        )

    return done


class OutputReader:
    """Consume every output topic from the beginning, in a background thread."""

    def __init__(self, kafka: str, settings: Settings, extra: Sequence[str] = ()) -> None:
        t = settings.topics
        self.topics = [t.approved, t.suppressed, t.retracted, t.dlq, *extra]
        self.records: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": kafka, "group.id": "it-unused", "enable.auto.commit": False})
        # Assigned, not subscribed: no group coordinator, which a freshly started broker
        # may take long to load.
        parts = []
        for topic in self.topics:
            md = self._consumer.list_topics(topic, timeout=30)
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
        self._consumer.assign(parts)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self._consumer.consume(1000, 0.2):
                if m.error() is None:
                    topic, value = m.topic(), m.value()
                    assert topic is not None and value is not None
                    with self._lock:
                        self.records.append((topic, orjson.loads(value)))
        self._consumer.close()

    def snapshot(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.records)

    def wait_for(self, pred: Any, timeout: float = 60.0) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = self.snapshot()
            if pred(recs):
                return recs
            time.sleep(0.2)
        raise AssertionError(f"timed out; have {Counter(t for t, _ in self.snapshot())}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def start_flow(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    if args and args[0] == "bytewax.run":
        # Bytewax's own runner with our flow factory.
        cmd = [sys.executable, "-m", "bytewax.run", "stockguard.live:get_flow()", *args[1:]]
    else:
        cmd = [*STOCKGUARD, "run", *args]
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        # A file, not a pipe: nobody reads it while the flow runs, and a full pipe blocks
        # the flow in its next log write.
        stdout=tempfile.TemporaryFile(),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_flows(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)


def probe(services: Services, settings: Settings, reader: OutputReader, n: int) -> None:
    """Wait until the flow decides a probe trigger: it is up and reading."""
    msg = {
        "trigger_id": f"probe-{n}",
        "ts": 1764547200000,
        "campaign_id": "cm",
        "customer_id": "probe-customer",
        "kind": "back_in_stock",
        "channel": "email",
        "skus": [PROBE_SKU],
        "consent": True,
    }
    produce(services.kafka, [(settings.topics.triggers, "probe-customer", msg)])
    reader.wait_for(lambda recs: any(m.get("trigger_id") == f"probe-{n}" for _t, m in recs), timeout=90)


def run_live_phases(
    services: Services, settings: Settings, env: dict[str, str], procs_args: list[list[str]]
) -> dict[str, Any]:
    stages = phases()
    expected = signature(
        settings,
        [
            (r.topic, orjson.loads(r.value))
            for r in replay_outputs(settings, renamed(settings, [m for s in stages for m in s]))
        ],
    )
    reader = OutputReader(services.kafka, settings)
    procs = [start_flow(env, *args) for args in procs_args]
    try:
        probe(services, settings, reader, 0)
        for stage in stages:
            produce(services.kafka, renamed(settings, stage))
            time.sleep(2.0)
        n_expected = len(expected["approved"]) + len(expected["suppressed"])

        reader.wait_for(decided_all(settings, expected), timeout=120)
        time.sleep(1.0)
        got = signature(settings, reader.snapshot())
        scraped = [scrape(env, pid) for pid in range(len(procs))]
    finally:
        stop_flows(procs)
        reader.close()
    assert n_expected > 100 and expected["retracted"] and expected["dlq"]
    return {"expected": expected, "got": got, "scraped": scraped}


def scrape(env: dict[str, str], pid: int) -> dict[str, Any]:
    """Read a live process's /metrics and /readyz."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    port = int(env["STOCKGUARD_METRICS_PORT"]) + pid
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:  # noqa: S310
        text = r.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            samples.setdefault(smp.name, []).append((smp.labels, smp.value))
    hport = int(env["STOCKGUARD_HEALTH_PORT"]) + pid
    with urllib.request.urlopen(f"http://127.0.0.1:{hport}/readyz", timeout=10) as r:  # noqa: S310
        ready = r.status
    return {"samples": samples, "ready": ready}


def assert_same(result: dict[str, Any]) -> None:
    exp, got = result["expected"], result["got"]
    assert got["approved"] == exp["approved"]
    assert got["suppressed"] == exp["suppressed"]
    assert got["retracted"] == exp["retracted"]
    assert got["dlq"] == exp["dlq"]


def test_live_run_on_one_worker_decides_like_the_replay(services: Services) -> None:
    settings, env = isolated(services)
    result = run_live_phases(services, settings, env, [["-w", "1"]])
    assert_same(result)
    # The live metrics endpoint has every metric the dashboard and the alert rules use
    # (but the deliverers', checked in tests/integration/test_deliver.py) ...
    from tests.stockguard.test_operations import DELIVERER_METRICS, dashboard_metrics, rules_metrics

    scraped = result["scraped"][0]
    samples = scraped["samples"]
    assert scraped["ready"] == 200
    series = set(samples) | {"up"}
    used = {m for m in dashboard_metrics() | rules_metrics() if not m.startswith(DELIVERER_METRICS)}
    assert used - series == set()
    # Our own server: Bytewax's API (which binds 0.0.0.0) is off unless asked for.
    assert not any(name.startswith("bytewax_") for name in samples)
    assert samples["stockguard_kafka_up"][0][1] == 1

    # ... with values that add up: every trigger read is approved, suppressed or dead-lettered.
    def total(name: str, **labels: str) -> float:
        return float(sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())))

    read = total("stockguard_events_read_total", input="triggers")
    decided = total("stockguard_triggers_total")
    dead = total("stockguard_dlq_total", input="triggers")
    got = result["got"]
    assert read == decided + dead
    assert decided == len(got["approved"]) + len(got["suppressed"]) + 1  # + the probe
    assert total("stockguard_decision_latency_seconds_count") == decided
    assert total("stockguard_retractions_total") == len(got["retracted"])


def test_bytewax_run_with_the_flow_factory_decides_like_the_replay(services: Services) -> None:
    settings, env = isolated(services)
    assert_same(run_live_phases(services, settings, env, [["bytewax.run", "-w", "1"]]))


def test_two_workers_decide_like_the_replay(services: Services) -> None:
    settings, env = isolated(services)
    assert_same(run_live_phases(services, settings, env, [["-w", "2"]]))


def test_two_processes_decide_like_the_replay(services: Services) -> None:
    settings, env = isolated(services)
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    assert_same(run_live_phases(services, settings, env, [["-i", "0", "-a", addresses], ["-i", "1", "-a", addresses]]))


def test_kill_9_then_restart_loses_no_trigger(services: Services, tmp_path: Path) -> None:
    settings, env = isolated(services)
    recovery = tmp_path / "recovery"
    a, b, c, _d = phases(seed=11)
    triggers = [m for m in c if isinstance(m[2], dict) and "trigger_id" in m[2] and "customer_id" in m[2]]
    reader = OutputReader(services.kafka, settings)
    procs = [start_flow(env, "-r", str(recovery))]
    try:
        probe(services, settings, reader, 0)
        produce(services.kafka, renamed(settings, a + b))
        time.sleep(2.0)
        batches = [triggers[i::8] for i in range(8)]
        for i, batch in enumerate(batches):
            produce(services.kafka, renamed(settings, batch))
            time.sleep(0.6)
            if i == 3:
                # Let at least one snapshot pass, then crash hard.
                time.sleep(1.5)
                os.killpg(procs[0].pid, signal.SIGKILL)
                procs[0].wait(10)
                procs.append(start_flow(env, "-r", str(recovery)))
        ids = {m[2]["trigger_id"] for m in triggers}

        def all_decided(recs: list[tuple[str, dict[str, Any]]]) -> bool:
            seen = {m.get("trigger_id") for t, m in recs if t in (settings.topics.approved, settings.topics.suppressed)}
            return ids <= seen

        recs = reader.wait_for(all_decided, timeout=120)
    finally:
        stop_flows(procs)
        reader.close()
    decisions: dict[str, set[bytes]] = {}
    for topic, m in recs:
        if topic in (settings.topics.approved, settings.topics.suppressed) and m["trigger_id"] in ids:
            m.pop("decided_ts")
            decisions.setdefault(m["trigger_id"], set()).add(orjson.dumps(m, option=orjson.OPT_SORT_KEYS))
    assert set(decisions) == ids
    # At-least-once: a trigger replayed after the restart gets the identical decision.
    assert all(len(v) == 1 for v in decisions.values())
    assert any(p.returncode == -signal.SIGKILL for p in procs[:1])
    assert list(recovery.glob("part-*.sqlite3"))


@pytest.fixture
def second_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A broker of our own on other ports, that the test may kill."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "STOCKGUARD_RUN_DIR": str(tmp_path / "svc"),
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
    }
    out = subprocess.run(
        ["bash", str(SERVICES), "start-kafka"], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    yield out.stdout.strip().splitlines()[-1], env
    subprocess.run(["bash", str(SERVICES), "stop-kafka"], env=env, capture_output=True, timeout=120, check=False)


def test_a_sink_whose_broker_is_gone_fails_the_flow(second_broker: tuple[str, dict[str, str]]) -> None:
    bootstrap, env = second_broker
    settings = Settings()
    records: list[Any] = []
    for i in range(60):
        records.append(
            RawRecord(
                settings.topics.triggers,
                b"c",
                orjson.dumps(
                    {
                        "trigger_id": f"t{i}",
                        "ts": 1764547200000 + i,
                        "campaign_id": "cm",
                        "customer_id": f"c{i}",
                        "kind": "promotion",
                        "channel": "email",
                        "skus": ["A"],
                        "consent": True,
                    }
                ),
            )
        )
        records.append(TestingSource.PAUSE(__import__("datetime").timedelta(milliseconds=100)))
    sink = KafkaOutput({"bootstrap.servers": bootstrap, "message.timeout.ms": "3000"}, flush_timeout=10)
    flow = build_flow(settings, {"test": TestingSource(records)}, {"kafka": sink})
    pid = int((Path(env["STOCKGUARD_RUN_DIR"]) / "kafka" / "kafka.pid").read_text().strip())

    def kill_broker() -> None:
        time.sleep(1.5)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_broker)
    killer.start()
    start = time.monotonic()
    with pytest.raises(Exception) as err:
        run_main(flow, epoch_interval=__import__("datetime").timedelta(milliseconds=500))  # type: ignore[no-untyped-call]
    killer.join()
    chain = []
    exc: BaseException | None = err.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, DeliveryError) for e in chain), chain
    assert time.monotonic() - start < 60


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"REDIS_PORT": str(free_port()), "STOCKGUARD_RUN_DIR": str(tmp_path / "svc")}
    out = subprocess.run(
        ["bash", str(SERVICES), "start-redis"], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    yield out.stdout.strip().splitlines()[-1], env
    subprocess.run(["bash", str(SERVICES), "stop-redis"], env=env, capture_output=True, timeout=60, check=False)


def test_a_redis_outage_changes_no_decision_and_the_view_catches_up(own_redis: tuple[str, dict[str, str]]) -> None:
    url, env = own_redis
    settings = Settings()
    msgs = [m for stage in phases(seed=3) for m in stage]
    records: list[Any] = []
    for i, (topic, key, value) in enumerate(msgs):
        records.append(to_raw(topic, key, value, i))
        if i % 100 == 0:
            # Stretch the stream over a few seconds so the outage happens mid-stream.
            records.append(TestingSource.PAUSE(__import__("datetime").timedelta(milliseconds=150)))
    baseline = replay_outputs(settings, msgs)

    views = RedisViewSink(url, prefix="it")
    collected = CollectSink()
    flow = build_flow(settings, {"test": TestingSource(records)}, {"out": collected}, views=views, clock=lambda: 0)

    def outage() -> None:
        time.sleep(0.8)
        subprocess.run(["bash", str(SERVICES), "stop-redis"], env=env, capture_output=True, timeout=60, check=True)
        time.sleep(2.5)
        subprocess.run(["bash", str(SERVICES), "start-redis"], env=env, capture_output=True, timeout=60, check=True)

    t = threading.Thread(target=outage)
    t.start()
    run_main(flow)  # type: ignore[no-untyped-call]
    t.join()

    def strip(rs: list[OutRecord]) -> list[tuple[str, bytes]]:
        res = []
        for r in rs:
            m = orjson.loads(r.value)
            m.pop("decided_ts", None)
            m.pop("ts", None) if r.topic == settings.topics.dlq else None
            res.append((r.topic, orjson.dumps(m, option=orjson.OPT_SORT_KEYS)))
        return sorted(res)

    assert strip(collected.items) == strip(baseline)
    writer = views.writers[0]
    assert writer.errors > 0, "the outage was not noticed"
    # The view converges on the final state once Redis is back.
    final = {v.sku: v.view for v in _final_views(settings, msgs)}
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        mismatched = [sku for sku, v in final.items() if int(client.hget(f"it:sku:{sku}", "atp") or -1) != v["atp"]]
        if not mismatched:
            break
        time.sleep(0.3)
    assert mismatched == []
    # The campaign view is there too.
    campaign = client.hgetall("it:campaign:cm-cyber")
    assert int(campaign[b"orders"]) > 0 and float(campaign[b"revenue"]) > 0 and b"media_cost" in campaign
    assert 0 < client.ttl(f"it:sku:{next(iter(final))}") <= 7 * 86_400


def _final_views(settings: Settings, msgs: list[Message]) -> list[StockView]:
    """The last view of every sku, from a run with an in-memory view sink."""
    out: list[StockView | CampaignView] = []
    records = [to_raw(topic, key, value, i) for i, (topic, key, value) in enumerate(msgs)]
    run_main(  # type: ignore[no-untyped-call]
        build_flow(settings, {"t": TestingSource(records)}, {"o": CollectSink(keep=False)}, views=TestingSink(out))
    )
    last: dict[str, StockView] = {}
    for v in out:
        if isinstance(v, StockView):
            last[v.sku] = v
    return list(last.values())


def test_topics_create_makes_every_contract_topic_with_its_policy(services: Services) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

    settings, _env = isolated(services)  # creates them
    admin = AdminClient({"bootstrap.servers": services.kafka})
    t = settings.topics
    md = admin.list_topics(timeout=10).topics
    for topic in (*t.inputs(), *t.outputs()):
        assert topic in md and len(md[topic].partitions) == 2
    resources = [ConfigResource("topic", t.products), ConfigResource("topic", t.triggers)]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    assert configs[t.products]["cleanup.policy"].value == "compact"
    assert configs[t.triggers]["cleanup.policy"].value == "delete"
    assert configs[t.triggers]["retention.ms"].value == str(settings.kafka.retention)
    # Running it again changes nothing and says so.
    from stockguard.live import create_topics

    assert {outcome for _topic, outcome in create_topics(settings)} == {"exists"}
