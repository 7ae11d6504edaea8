"""End-to-end decision latency through the real local Kafka, and sustained throughput.

    bash scripts/services.sh start-kafka
    .venv/bin/python -m bench.latency_bench --seconds 30 --trigger-rate 2000 --background-rate 20000

Starts `stockguard run` on its own topics, a separate consumer process on the decision
topics, then produces triggers at a fixed rate on top of background clickstream, stock and
order traffic. Each trigger carries its produce time (`bench_sent_ns`, an extra field the
contract lets us add and stockguard echoes), so the consumer measures produce -> decision
arrival. A second phase produces as fast as it can and reports the decision rate.
Prints a table and writes JSON (default bench/results/latency.json).

`--processor loop` measures `bench/handwritten_loop.py` (the same pure rules in one
confluent-kafka loop, no Bytewax) and `--processor quix` the Quix Streams peer
(`bench/quix_peer.py`, in its own virtualenv: `--quix-python`) under the very same load,
broker and consumer, so the figures of one session compare: run them one after another. Each
phase also reports the CPU share of the processor, the load producer (this process) and
the measuring consumer, from /proc.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from bench.common import produce, report
from stockguard.config.settings import Settings, load_settings, topic_env
from stockguard.live import create_topics

ROOT = Path(__file__).resolve().parent.parent

T0 = 1764547200000
SKUS = [f"SKU-{i:05d}" for i in range(2000)]
LOCS = ["WH-PARIS", "WH-LYON"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_env(kafka: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    env.update(topic_env(f"bench-{uuid.uuid4().hex[:8]}."))
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka
    env["STOCKGUARD_METRICS_PORT"] = str(free_port())
    env["STOCKGUARD_HEALTH_PORT"] = str(free_port())
    env["STOCKGUARD_LOG_LEVEL"] = "WARNING"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def wait_ready(env: dict[str, str], timeout: float = 60) -> None:
    url = f"http://127.0.0.1:{env['STOCKGUARD_HEALTH_PORT']}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("stockguard did not become ready")


class Load:
    """Produce background events and triggers with a shared producer."""

    def __init__(self, kafka: str, settings: Settings) -> None:
        self.t = settings.topics
        self.p = Producer(
            {
                "bootstrap.servers": kafka,
                "linger.ms": 5,  # upstream systems batch; only triggers are timed
                "enable.idempotence": True,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self.trig = Producer({"bootstrap.servers": kafka, "linger.ms": 0, "enable.idempotence": True})
        self.rng = random.Random(7)
        self.n = 0
        self.ts = T0

    def _send(self, producer: Producer, topic: str, key: str, value: dict[str, Any]) -> None:
        produce(producer, topic, orjson.dumps(value), key)

    def seed_stock(self) -> None:
        for i, sku in enumerate(SKUS):
            self._send(
                self.p,
                self.t.products,
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
            self._send(
                self.p,
                self.t.stock,
                sku,
                {
                    "event_id": f"l{i}",
                    "ts": T0,
                    "type": "level",
                    "sku": sku,
                    "location": LOCS[i % 2],
                    "on_hand": 10_000,
                    "reserved": 0,
                },
            )
        self.p.flush(30)

    def background(self) -> None:
        self.n += 1
        n = self.n
        self.ts += 1
        sku = SKUS[self.rng.randrange(len(SKUS))]
        cust = f"c{self.rng.randrange(200_000)}"
        r = n % 10
        if r < 7:
            self._send(
                self.p,
                self.t.clickstream,
                cust,
                {
                    "event_id": f"v{n}",
                    "ts": self.ts,
                    "type": "product_view",
                    "customer_id": cust,
                    "session_id": "s",
                    "sku": sku,
                    "qty": 1,
                },
            )
        elif r < 9:
            self._send(
                self.p,
                self.t.orders,
                f"o{n}",
                {
                    "event_id": f"o{n}",
                    "ts": self.ts,
                    "order_id": f"o{n}",
                    "status": "placed",
                    "customer_id": cust,
                    "lines": [{"sku": sku, "qty": 1, "unit_price": 30.0, "location": LOCS[n % 2]}],
                },
            )
        else:
            self._send(
                self.p,
                self.t.stock,
                sku,
                {
                    "event_id": f"a{n}",
                    "ts": self.ts,
                    "type": "adjustment",
                    "sku": sku,
                    "location": LOCS[n % 2],
                    "delta": 1,
                },
            )

    def trigger(self, i: int, producer: Producer | None = None, prefix: str = "bt") -> None:
        cust = f"tc{i}"
        self.ts += 1
        self._send(
            producer or self.trig,
            self.t.triggers,
            cust,
            {
                "trigger_id": f"{prefix}{i}",
                "ts": self.ts,
                "campaign_id": "cm",
                "customer_id": cust,
                "kind": "promotion",
                "channel": "email",
                "skus": [SKUS[i % len(SKUS)]],
                "consent": True,
                "bench_sent_ns": time.time_ns(),
            },
        )

    def poll(self) -> None:
        self.p.poll(0)
        self.trig.poll(0)


def consumer(kafka: str, topics: list[str], out: Path, expect: int, timeout: float) -> subprocess.Popen[bytes]:
    code = f"""
import sys, time, orjson
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
c = Consumer({{"bootstrap.servers": {kafka!r}, "group.id": "bench-unused", "enable.auto.commit": False,
              "fetch.wait.max.ms": 5}})
# Assigned, not subscribed: no group rebalance delays, every partition from the start.
parts = []
for topic in {topics!r}:
    md = c.list_topics(topic, timeout=10)
    parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
c.assign(parts)
lat = []
out_ts = []
first = last = None
deadline = time.time() + {timeout}
while len(lat) < {expect} and time.time() < deadline:
    # consume(n, t) waits for n messages or t seconds: a latency probe must not batch.
    m = c.poll(0.01)
    if m is None or m.error():
        continue
    now = time.time_ns()
    v = orjson.loads(m.value())
    sent = v.get("bench_sent_ns")
    if sent is None or v.get("trigger_id", "").startswith("warm"):
        continue
    lat.append((now - sent) / 1e6)
    out_ts.append(m.timestamp()[1] - sent / 1e6)
    first = first or now
    last = now
open({str(out)!r}, "wb").write(orjson.dumps({{"lat_ms": lat, "to_output_ms": out_ts, "first_ns": first,
                                             "last_ns": last}}))
c.close()
"""
    return subprocess.Popen([sys.executable, "-c", code])


def cpu_seconds(pid: int) -> float:
    """Return a process's user + system CPU seconds, children included, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def internal_latency(env: dict[str, str]) -> dict[str, float]:
    """Read stockguard's own histogram: Kafka timestamp -> decision handed to the sink."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{env['STOCKGUARD_METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback
        text = r.read().decode()
    buckets: list[tuple[float, float]] = []
    for fam in text_string_to_metric_families(text):
        if fam.name == "stockguard_decision_latency_seconds":
            for smp in fam.samples:
                if smp.name.endswith("_bucket"):
                    buckets.append((float(smp.labels["le"]), smp.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    out = {}
    for q in (0.5, 0.99):
        le = next((b for b, c in buckets if total and c >= q * total), float("nan"))
        out[f"p{int(q * 100)}_le_ms"] = le * 1000
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main() -> int:
    """Run both phases and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--trigger-rate", type=int, default=2000)
    ap.add_argument("--background-rate", type=int, default=20000)
    ap.add_argument("--max-triggers", type=int, default=100_000, help="triggers of the throughput phase")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--processor",
        choices=["stockguard", "loop", "quix"],
        default="stockguard",
        help="what decides: stockguard run, the hand-written loop, or the Quix Streams peer",
    )
    ap.add_argument(
        "--quix-python",
        default="/tmp/venv-quix/bin/python",
        help="Python of a virtualenv with quixstreams (see bench/quix_peer.py), for --processor quix",
    )
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "latency.json"))
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="extra environment of stockguard (a setting)"
    )
    args = ap.parse_args()

    extra = {"STOCKGUARD_KAFKA__PARTITIONS": "2"}
    extra.update(kv.split("=", 1) for kv in args.set)
    env = bench_env(args.kafka, extra)
    settings = load_settings(env=env)
    create_topics(settings)
    t = settings.topics
    if args.processor == "loop":
        cmd = [sys.executable, "-m", "bench.handwritten_loop", "--idle", "3600"]
    elif args.processor == "quix":
        cmd = [args.quix_python, "-m", "bench.quix_peer", "--expect", str(10**12)]
    else:
        cmd = [sys.executable, "-m", "stockguard.cli", "run", "-w", str(args.workers)]
    flow = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    result: dict[str, Any] = {
        "processor": args.processor,
        "workers": args.workers,
        "trigger_rate": args.trigger_rate,
        "background_rate": args.background_rate,
        "seconds": args.seconds,
        "settings": args.set,
    }
    try:
        load = Load(args.kafka, settings)
        load.seed_stock()
        if args.processor == "stockguard":
            wait_ready(env)
        else:
            # No health endpoint: the loop assigns at start, Quix joins a consumer group.
            time.sleep(3 if args.processor == "loop" else 12)
        # Warm up: the sink's idempotent producer gets its producer id on first use (~0.5 s).
        for i in range(200):
            load.trigger(i, load.trig, prefix="warm")
        load.trig.flush(10)
        time.sleep(2)
        n_trig = int(args.seconds * args.trigger_rate)
        out = Path("/tmp") / f"lat-{uuid.uuid4().hex}.json"
        cons = consumer(args.kafka, [t.approved, t.suppressed], out, n_trig, args.seconds + 60)
        time.sleep(3)  # let the consumer join
        cpu0 = {"processor": cpu_seconds(flow.pid), "load": cpu_seconds(os.getpid()), "consumer": cpu_seconds(cons.pid)}
        start = time.monotonic()
        sent_t = sent_b = 0
        while (elapsed := time.monotonic() - start) < args.seconds:
            want_t = int(elapsed * args.trigger_rate)
            want_b = int(elapsed * args.background_rate)
            while sent_t < min(want_t, n_trig):
                load.trigger(sent_t)
                sent_t += 1
            while sent_b < want_b:
                load.background()
                sent_b += 1
            load.poll()
            time.sleep(0.0005)
        span_s = time.monotonic() - start
        cpu1 = {"processor": cpu_seconds(flow.pid), "load": cpu_seconds(os.getpid()), "consumer": cpu_seconds(cons.pid)}
        result["cpu_share"] = {k: round((cpu1[k] - cpu0[k]) / span_s, 2) for k in cpu0}
        load.p.flush(30)
        load.trig.flush(30)
        cons.wait(120)
        data = orjson.loads(out.read_bytes())
        lat = data["lat_ms"]
        if args.processor == "stockguard":
            result["internal"] = internal_latency(env)
        to_out = data["to_output_ms"]
        result["produce_to_output_p50_ms"] = round(pct(to_out, 0.5), 2)
        result["produce_to_output_p99_ms"] = round(pct(to_out, 0.99), 2)
        result.update(
            {
                "triggers_sent": sent_t,
                "background_sent": sent_b,
                "decisions_received": len(lat),
                "p50_ms": round(pct(lat, 0.50), 2),
                "p99_ms": round(pct(lat, 0.99), 2),
                "p999_ms": round(pct(lat, 0.999), 2),
                "max_ms": round(max(lat), 2) if lat else None,
            }
        )

        # Phase 2: as fast as we can produce; the decision rate at the consumer.
        out2 = Path("/tmp") / f"thr-{uuid.uuid4().hex}.json"
        cons2 = consumer(args.kafka, [t.approved, t.suppressed], out2, args.max_triggers, 300)
        time.sleep(3)
        fast = Producer({"bootstrap.servers": args.kafka, "linger.ms": 5, "queue.buffering.max.messages": 2_000_000})
        t_prod = time.monotonic()
        for i in range(args.max_triggers):
            load.trigger(10_000_000 + i, fast)
            if i % 10_000 == 0:
                fast.poll(0)
        fast.flush(60)
        prod_s = time.monotonic() - t_prod
        cons2.wait(400)
        d2 = orjson.loads(out2.read_bytes())
        got = len(d2["lat_ms"])
        span = (d2["last_ns"] - d2["first_ns"]) / 1e9 if got > 1 else float("nan")
        result.update(
            {
                "throughput_triggers": args.max_triggers,
                "throughput_received": got,
                "producer_seconds": round(prod_s, 2),
                "decisions_per_second": round(got / span) if span == span and span > 0 else None,
            }
        )
    finally:
        os.killpg(flow.pid, signal.SIGTERM)
        try:
            flow.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(flow.pid, signal.SIGKILL)

    rows = [
        ("processor", args.processor),
        ("workers", str(args.workers)),
        ("triggers / background rate", f"{args.trigger_rate:,}/s + {args.background_rate:,}/s"),
        ("triggers sent / decided", f"{result['triggers_sent']:,} / {result['decisions_received']:,}"),
        ("background events sent", f"{result['background_sent']:,}"),
        ("latency p50 / p99 / p99.9", f"{result['p50_ms']} / {result['p99_ms']} / {result['p999_ms']} ms"),
        *(
            [
                (
                    "in-flow p50 / p99 (histogram bucket bound)",
                    f"<= {result['internal']['p50_le_ms']:g} / <= {result['internal']['p99_le_ms']:g} ms",
                )
            ]
            if "internal" in result
            else []
        ),
        (
            "CPU, cores: processor / load / consumer",
            " / ".join(f"{v:.2f}" for v in result["cpu_share"].values()),
        ),
        ("sustained decisions/s (burst of triggers)", f"{result['decisions_per_second']:,}"),
    ]
    report(rows, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
