"""stockguard against the hand-written confluent-kafka loop on the same broker and data.

    bash scripts/services.sh start-kafka
    .venv/bin/python -m bench.compare_bench --events 300000

Produces a backlog of events once (shared input topics), then lets each processor drain it
from the beginning, one after the other, each writing to its own output topics:
stockguard (`stockguard run`, timed from readiness to the last trigger decided, read from
its metrics) and `bench/handwritten_loop.py` (timed by itself from its first to its last
input batch). The data is built so that decisions cannot depend on how a consumer
interleaves partitions (ample stock, buyers and trigger recipients disjoint, one trigger
per customer), so both must decide every trigger the same:
checked on every trigger id. Prints a table and writes JSON (bench/results/compare.json).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.common import produce, report
from bench.latency_bench import cpu_seconds, free_port, wait_ready
from stockguard.config.settings import load_settings, topic_env
from stockguard.live import create_topics

ROOT = Path(__file__).resolve().parent.parent

T0 = 1764547200000
LOCS = ["WH-PARIS", "WH-LYON"]


def produce_backlog(kafka: str, names: dict[str, str], events: int, skus: int) -> int:
    """Produce the order-independent backlog; return the number of triggers."""
    rng = random.Random(3)
    p = Producer(
        {
            "bootstrap.servers": kafka,
            "linger.ms": 20,
            "queue.buffering.max.messages": 2_000_000,
            "compression.type": "lz4",
        }
    )
    sku_ids = [f"SKU-{i:06d}" for i in range(skus)]

    def put(topic: str, key: str, value: dict[str, Any]) -> None:
        produce(p, names[topic], orjson.dumps(value), key)

    for i, sku in enumerate(sku_ids):
        put(
            "catalog.products",
            sku,
            {
                "sku": sku,
                "ts": T0,
                "product_id": sku,
                "group": f"g{i // 20}",
                "size": "M",
                "price": 30.0,
                "unit_cost": 12.0,
                "active": True,
                "online": True,
            },
        )
        put(
            "inventory.stock",
            sku,
            {
                "event_id": f"l{i}",
                "ts": T0,
                "type": "level",
                "sku": sku,
                "location": LOCS[i % 2],
                "on_hand": 1_000_000,
                "reserved": 0,
            },
        )
    n = 2 * skus
    triggers = 0
    i = 0
    while n < events:
        i += 1
        ts = T0 + i
        sku = sku_ids[rng.randrange(skus)]
        r = i % 10
        if r < 5:
            cust = f"v{rng.randrange(100_000)}"
            put(
                "shop.clickstream",
                cust,
                {
                    "event_id": f"v{i}",
                    "ts": ts,
                    "type": "product_view",
                    "customer_id": cust,
                    "session_id": "s",
                    "sku": sku,
                    "qty": 1,
                },
            )
        elif r < 7:
            put(
                "inventory.stock",
                sku,
                {"event_id": f"a{i}", "ts": ts, "type": "adjustment", "sku": sku, "location": LOCS[i % 2], "delta": 1},
            )
        elif r < 8:
            buyer = f"b{rng.randrange(100_000)}"
            put(
                "shop.orders",
                f"o{i}",
                {
                    "event_id": f"o{i}",
                    "ts": ts,
                    "order_id": f"o{i}",
                    "status": "placed",
                    "customer_id": buyer,
                    "lines": [{"sku": sku, "qty": 1, "unit_price": 30.0, "location": LOCS[i % 2]}],
                },
            )
        else:
            cust = f"t{i}"
            put(
                "marketing.triggers",
                cust,
                {
                    "trigger_id": f"t{i}",
                    "ts": ts,
                    "campaign_id": "cm",
                    "customer_id": cust,
                    "kind": "promotion",
                    "channel": "email",
                    "skus": [sku],
                    "consent": i % 23 != 0,
                },
            )
            triggers += 1
        n += 1
        if n % 50_000 == 0:
            p.poll(0)
    p.flush(60)
    return triggers


def read_decisions(kafka: str, topics: list[str], timeout: float = 30) -> dict[str, bytes]:
    """Read every decision message; return trigger id -> decision signature."""
    c = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": "cmp-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    parts = []
    for topic in topics:
        md = c.list_topics(topic, timeout=10)
        parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
    c.assign(parts)
    out: dict[str, bytes] = {}
    eof: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    while len(eof) < len(parts) and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error():
                eof.add((m.topic() or "", m.partition() or 0))
                continue
            v = orjson.loads(m.value() or b"{}")
            sig = orjson.dumps([v.get("decision"), v.get("reason"), v.get("skus")])
            out[f"{v['trigger_id']}@{v['customer_id']}"] = sig
    c.close()
    return out


def metric_sum(port: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:  # noqa: S310 - loopback
        text = r.read().decode()
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def main() -> int:
    """Run both processors on one backlog and compare."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--skus", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=1, help="workers per stockguard process")
    ap.add_argument("--processes", type=int, default=1, help="stockguard processes (a -i/-a cluster)")
    ap.add_argument("--skip-peers", action="store_true", help="measure stockguard alone")
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="extra environment of stockguard (a setting)"
    )
    ap.add_argument(
        "--quix-python",
        default="/tmp/venv-quix/bin/python",
        help="Python of a virtualenv with quixstreams (skipped when missing)",
    )
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "compare.json"))
    args = ap.parse_args()

    run = uuid.uuid4().hex[:8]
    base = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    base |= topic_env(f"cmp-{run}.")
    base |= {
        "KAFKA_BOOTSTRAP_SERVERS": args.kafka,
        "STOCKGUARD_KAFKA__PARTITIONS": "2",
        "STOCKGUARD_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    sg_extra = dict(kv.split("=", 1) for kv in args.set)
    envs = {}
    for who in ("stockguard", "loop", "quix"):
        env = dict(base)
        for out in ("APPROVED", "SUPPRESSED", "RETRACTED", "SURGE_ALERTS", "INSIGHTS", "DLQ"):
            env[f"STOCKGUARD_TOPICS__{out}"] = f"cmp-{run}-{who}.{out.lower()}"
        env["STOCKGUARD_METRICS_PORT"] = str(free_port())
        env["STOCKGUARD_HEALTH_PORT"] = str(free_port())
        if who == "stockguard":
            env.update(sg_extra)
        envs[who] = env
        create_topics(load_settings(env=env))
    settings = load_settings(env=envs["stockguard"])
    t0 = time.monotonic()
    n_triggers = produce_backlog(args.kafka, settings.topics.from_contract(), args.events, args.skus)
    produce_s = time.monotonic() - t0

    # stockguard, from readiness to the last trigger decided. A cluster of processes
    # (-i/-a) gets one metrics and health port each; their counts add up.
    env = envs["stockguard"]
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(args.processes))
    proc_envs = []
    flows = []
    for i in range(args.processes):
        # Process i serves metrics and health on the configured ports + i.
        penv = dict(env) | {
            "STOCKGUARD_METRICS_PORT": str(int(env["STOCKGUARD_METRICS_PORT"]) + i),
            "STOCKGUARD_HEALTH_PORT": str(int(env["STOCKGUARD_HEALTH_PORT"]) + i),
        }
        cluster = ["-i", str(i), "-a", addresses] if args.processes > 1 else []
        proc_envs.append(penv)
        flows.append(
            subprocess.Popen(
                [sys.executable, "-m", "stockguard.cli", "run", "-w", str(args.workers), *cluster],
                env=env,
                cwd="/tmp",
                start_new_session=True,
            )
        )
    cpu0 = [0.0] * len(flows)
    try:
        for penv in proc_envs:
            wait_ready(penv)
        cpu0 = [cpu_seconds(f.pid) for f in flows]
        start = time.monotonic()
        ports = [penv["STOCKGUARD_METRICS_PORT"] for penv in proc_envs]
        while True:
            decided = sum(
                metric_sum(port, "stockguard_triggers_total")
                + metric_sum(port, "stockguard_dlq_total", input="triggers")
                for port in ports
            )
            if decided >= n_triggers:
                break
            if time.monotonic() - start > 600:
                raise RuntimeError(f"stockguard decided only {decided} of {n_triggers}")
            time.sleep(0.05)
        sg_s = time.monotonic() - start
        sg_cpu = [cpu_seconds(f.pid) - c for f, c in zip(flows, cpu0, strict=True)]
        sg_read = sum(metric_sum(port, "stockguard_events_read_total") for port in ports)
        # Counted is not yet acknowledged: stop stockguard only once its last decisions are
        # on the topic (a kill drops what its producer still queues; a restart re-decides it).
        sg_topics = [f"cmp-{run}-stockguard.approved", f"cmp-{run}-stockguard.suppressed"]
        deadline = time.monotonic() + 60
        while len(sg := read_decisions(args.kafka, sg_topics)) < n_triggers and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for f in flows:
            os.killpg(f.pid, signal.SIGTERM)
        for f in flows:
            f.wait(30)
    if args.skip_peers:
        sg_eps = sg_read / sg_s
        result = {
            "events": args.events,
            "triggers": n_triggers,
            "workers": args.workers,
            "processes": args.processes,
            "stockguard_seconds": round(sg_s, 2),
            "stockguard_events_per_second": round(sg_eps),
            "stockguard_cpu_seconds_per_process": [round(c, 2) for c in sg_cpu],
            "decisions": len(sg),
        }
        rows = [
            ("events (backlog) / triggers", f"{args.events:,} / {n_triggers:,}"),
            (f"stockguard run -w {args.workers} x {args.processes} process(es)", f"{sg_eps:,.0f} events/s"),
            ("CPU seconds per process", ", ".join(f"{c:.1f}" for c in sg_cpu)),
            ("decisions on the topics", f"{len(sg):,} of {n_triggers:,}"),
        ]
        report(rows, result, args.json)
        return 0

    loop = subprocess.run(
        [sys.executable, "-m", "bench.handwritten_loop", "--idle", "3"],
        env=envs["loop"],
        capture_output=True,
        text=True,
        check=True,
    )
    loop_line = loop.stderr.strip().splitlines()[-1]
    loop_eps = float(loop_line.rsplit("=", 1)[1].split()[0].replace(",", ""))

    quix_eps = None
    qx: dict[str, bytes] = {}
    if Path(args.quix_python).exists():
        quix = subprocess.run(
            [args.quix_python, "-m", "bench.quix_peer", "--expect", str(n_triggers)],
            env=envs["quix"],
            capture_output=True,
            text=True,
            check=True,
            timeout=1200,
        )
        quix_line = quix.stderr.strip().splitlines()[-1]
        quix_eps = float(quix_line.rsplit("=", 1)[1].split()[0].replace(",", ""))
        qx = read_decisions(args.kafka, [f"cmp-{run}-quix.approved", f"cmp-{run}-quix.suppressed"])

    hw = read_decisions(args.kafka, [f"cmp-{run}-loop.approved", f"cmp-{run}-loop.suppressed"])
    same = sum(1 for k, v in sg.items() if hw.get(k) == v)
    same_quix = sum(1 for k, v in sg.items() if qx.get(k) == v)
    sg_eps = sg_read / sg_s
    result = {
        "events": args.events,
        "triggers": n_triggers,
        "workers": args.workers,
        "processes": args.processes,
        "stockguard_cpu_seconds_per_process": [round(c, 2) for c in sg_cpu],
        "produce_seconds": round(produce_s, 1),
        "stockguard_seconds": round(sg_s, 2),
        "stockguard_events_per_second": round(sg_eps),
        "handwritten_events_per_second": round(loop_eps),
        "ratio_stockguard_to_handwritten": round(sg_eps / loop_eps, 2),
        "decisions_compared": len(sg),
        "decisions_identical": same,
        "loop_decisions": len(hw),
        "quix_events_per_second": round(quix_eps) if quix_eps else None,
        "ratio_stockguard_to_quix": round(sg_eps / quix_eps, 2) if quix_eps else None,
        "quix_decisions_identical": same_quix,
    }
    rows = [
        ("events (backlog) / triggers", f"{args.events:,} / {n_triggers:,}"),
        (f"stockguard run -w {args.workers} x {args.processes} process(es)", f"{sg_eps:,.0f} events/s"),
        ("hand-written confluent-kafka loop", f"{loop_eps:,.0f} events/s"),
        ("stockguard / hand-written", f"{sg_eps / loop_eps:.2f}x"),
        ("identical decisions", f"{same:,} of {len(sg):,} (loop decided {len(hw):,})"),
    ]
    if quix_eps:
        rows += [
            ("Quix Streams peer", f"{quix_eps:,.0f} events/s"),
            ("stockguard / Quix Streams", f"{sg_eps / quix_eps:.2f}x"),
            ("identical decisions (Quix)", f"{same_quix:,} of {len(sg):,}"),
        ]
    report(rows, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
