"""The deliverers: decision -> vendor request latency at a fixed rate, deliveries/s, the send-time check.

    bash scripts/services.sh start
    .venv/bin/python -m bench.deliver_bench --rate 2000 --seconds 20 --systems klaviyo,braze --service-ms 1

Starts the local fake vendors (`stockguard.fake_vendors`, every request checked as the
vendor's reference says, answered after `--service-ms`) in a process of their own, then
for each system `stockguard deliver <system>` on fresh topics, a fresh consumer group and
Redis prefix, against the real local Kafka and Redis:

1. **warm-up**: 200 approvals, waited for at the fake (the group's assignment, the first
   connections);
2. **rate**: approved decisions (the contract's message, keyed by customer) produced
   open loop at `--rate` for `--seconds` by an idempotent producer with `linger.ms` 0, as
   the flow's sink produces them. Each decision's produce time is kept; the fake stamps
   the wall-clock time each request arrives, per trigger id, so latency is *decision
   produced -> the vendor's request arrived*, both on this host's clock. Lost (approved,
   never requested) and doubled (requested twice) are counted per trigger id;
3. **max**: `--max-n` approvals produced at once; deliveries/s is N over the time from
   the first produce to the last arrival.

Then **the send-time check** (`GET /v1/triggers/{id}` on the gateway, open loop at
`--check-rate`): the gateway bench's own phase (`bench.gateway_bench.check_phase`), run
here on a gateway of its own.

The vendors' rate limits (Klaviyo's 58 events/s steady, Braze's 69 sends/s) are lifted:
this measures the deliverer, not the vendors' quotas. CPU shares come from /proc.
Prints a table and writes JSON (default bench/results/deliver.json).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from bench.common import produce, report
from bench.gateway_bench import (
    bucket_quantile,
    busy_and_steal,
    check_phase,
    cpu_seconds,
    cpu_times,
    free_port,
    gateway_env,
    gateway_url,
    pct,
    start_gateway,
    wait_gateway,
)
from stockguard.config.settings import Settings, load_settings, topic_env
from stockguard.live import create_topics

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = "cm-bench"
WARM = 200

# ---- the fake vendors, in a process of their own ----


def serve_fake(port: int, service_ms: float) -> None:
    """Serve the fake vendors on `port` until SIGTERM, with two routes for this bench.

    `GET /_bench/count`: arrivals per system (and requests refused); `GET /_bench/take`:
    every (system, trigger id, arrival time) so far, forgotten with what the fakes kept.
    """
    import uvloop
    from aiohttp import web

    from stockguard.fake_vendors import FakeVendors, fake_app

    gc.set_threshold(100_000, 50, 100)  # as the CLI does: no collections timed as latency
    fake = FakeVendors(delay=service_ms / 1000)
    app = fake_app(fake)

    async def count(_r: web.Request) -> web.Response:
        n = Counter(system for system, _tid, _at in fake.arrivals)
        return web.json_response(
            {"arrivals": dict(n), "refused": len(fake.refused), "requests": sum(fake.requests.values())}
        )

    async def take(_r: web.Request) -> web.Response:
        out, fake.arrivals = fake.arrivals, []
        fake.klaviyo_events.clear()
        fake.braze_sends.clear()
        fake._unique.clear()
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def orphaned(_app: web.Application) -> AsyncIterator[None]:
        # The bench killed without its cleanup (SIGKILL): do not serve on for ever.
        parent = os.getppid()

        async def watch() -> None:
            while os.getppid() == parent:
                await asyncio.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)

        task = asyncio.create_task(watch())
        yield
        task.cancel()

    app.router.add_get("/_bench/count", count)
    app.router.add_get("/_bench/take", take)
    app.cleanup_ctx.append(orphaned)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop())


def get_json(url: str, timeout: float = 10) -> Any:
    """GET a loopback URL and decode its JSON."""
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
        return orjson.loads(r.read())


def wait_url(url: str, timeout: float = 60) -> None:
    """Wait until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:g} s")
        time.sleep(0.1)


def wait_arrivals(fake_url: str, system: str, n: int, idle: float) -> int:
    """Wait until `n` arrivals for `system` are at the fake, or none came for `idle` s."""
    last, since = -1, time.monotonic()
    while True:
        got = int(get_json(fake_url + "/_bench/count")["arrivals"].get(system, 0))
        if got >= n:
            return got
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > idle:
            return got
        time.sleep(0.05)


def take_arrivals(fake_url: str, system: str) -> list[tuple[str, float]]:
    """Every (trigger id, arrival time) of `system` since the last take (the others are dropped)."""
    return [(tid, at) for s, tid, at in get_json(fake_url + "/_bench/take", timeout=60) if s == system]


# ---- the figures ----


def summarize(
    produced: dict[str, float], arrivals: Sequence[tuple[str, float]], started: float, ended: float
) -> dict[str, Any]:
    """Latency, rate, lost and doubled from produce times and the fake's arrival times (wall s).

    A trigger's latency runs from its produce to its first arrival; `started` and `ended`
    are the first and last produce.
    """
    first: dict[str, float] = {}
    seen: Counter[str] = Counter()
    unexpected = 0
    for tid, at in arrivals:
        if tid not in produced:
            unexpected += 1
            continue
        seen[tid] += 1
        if tid not in first or at < first[tid]:
            first[tid] = at
    lat = [(at - produced[tid]) * 1000 for tid, at in first.items()]
    last = max(first.values(), default=ended)
    span = max(ended - started, 1e-9)
    # p99 per 5 s of produce time: a latency that grows run long is a backlog.
    windows: dict[int, list[float]] = {}
    for tid, at in first.items():
        windows.setdefault(int((produced[tid] - started) // 5), []).append((at - produced[tid]) * 1000)
    return {
        "produced": len(produced),
        "offered_per_s": len(produced) / span if len(produced) > 1 else 0.0,
        "delivered": len(first),
        "delivered_per_s": len(first) / max(last - started, 1e-9),
        "delivered_by_last_produce": sum(1 for at in first.values() if at <= ended),
        "drain_after_last_produce_s": max(0.0, last - ended),
        "lost": len(produced) - len(first),
        "doubled": sum(1 for n in seen.values() if n > 1),
        "unexpected": unexpected,
        "p50_ms": pct(lat, 0.5),
        "p90_ms": pct(lat, 0.9),
        "p99_ms": pct(lat, 0.99),
        "p999_ms": pct(lat, 0.999),
        "max_ms": max(lat, default=float("nan")),
        "p99_ms_per_5s": [round(pct(v, 0.99), 2) for _w, v in sorted(windows.items())],
    }


def histogram(url: str, name: str, **labels: str) -> dict[float, float]:
    """A Prometheus histogram's cumulative count per bucket bound (samples matching `labels` summed)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # noqa: S310 - loopback
        text = r.read().decode()
    out: dict[float, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != name:
            continue
        for smp in fam.samples:
            if smp.name.endswith("_bucket") and all(smp.labels.get(k) == v for k, v in labels.items()):
                le = float(smp.labels["le"])
                out[le] = out.get(le, 0.0) + smp.value
    return out


def outcomes(url: str) -> dict[str, int]:
    """The deliverer's decisions per outcome (delivered, rejected, in_doubt, ...)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # noqa: S310 - loopback
        text = r.read().decode()
    out: dict[str, int] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "stockguard_delivery":
            for smp in fam.samples:
                if smp.name == "stockguard_delivery_total":
                    out[smp.labels["outcome"]] = out.get(smp.labels["outcome"], 0) + int(smp.value)
    return out


def service_pids() -> dict[str, int]:
    """The local Kafka and Redis of scripts/services.sh, when they run here."""
    run = Path(os.environ.get("STOCKGUARD_RUN_DIR", "/tmp/stockguard-services"))  # noqa: S108 - services.sh's default
    out = {}
    for name, pidfile in (("kafka", run / "kafka" / "kafka.pid"), ("redis", run / "redis" / "redis.pid")):
        try:
            pid = int(pidfile.read_text())
            cpu_seconds(pid)
            out[name] = pid
        except (OSError, ValueError, IndexError):
            pass
    return out


class CpuWatch:
    """CPU share (of one core) of each process, this one included, and the machine's busy share."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.own0 = time.process_time()
        self.host0 = cpu_times()
        self.cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}

    def shares(self) -> dict[str, float]:
        """Shares since construction."""
        dt = time.monotonic() - self.t0
        out = {k: round((cpu_seconds(p) - self.cpu0[k]) / dt, 3) for k, p in self.pids.items()}
        out["producer (this bench)"] = round((time.process_time() - self.own0) / dt, 3)
        busy, steal = busy_and_steal(self.host0, cpu_times())
        # What the host's other processes took (other users of a shared machine, the kernel).
        out["others"] = round(max(0.0, busy * (os.cpu_count() or 1) - sum(out.values())), 3)
        out["machine_busy"], out["machine_steal"] = round(busy, 3), round(steal, 4)
        return out


# ---- one system ----


def deliver_env(system: str, fake_url: str, extra: dict[str, str]) -> dict[str, str]:
    """A deliverer's environment: its own topics, group and Redis prefix, the fake as its vendor."""
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    env.update(topic_env(f"bench-dl-{system}-{run}."))
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "STOCKGUARD_REDIS__PREFIX": f"bench-dl-{run}",
            "STOCKGUARD_DELIVERY__GROUP_PREFIX": f"bench-dl-{run}",
            "STOCKGUARD_DELIVERY__RECORD_TTL": "1h",
            "STOCKGUARD_KLAVIYO__API_BASE": fake_url,
            "STOCKGUARD_KLAVIYO__API_KEY": "pk_test",
            "STOCKGUARD_KLAVIYO__EVENTS_RATE": "1000000",
            "STOCKGUARD_KLAVIYO__EVENTS_BURST": "10000",
            "STOCKGUARD_BRAZE__API_BASE": fake_url,
            "STOCKGUARD_BRAZE__API_KEY": "braze-test",
            "STOCKGUARD_BRAZE__CAMPAIGNS": json.dumps({CAMPAIGN: "b-bench"}),
            "STOCKGUARD_BRAZE__SEND_RATE": "1000000",
            "STOCKGUARD_BRAZE__SEND_BURST": "10000",
            "STOCKGUARD_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def approval(tid: str, i: int) -> tuple[str, bytes]:
    """An approved decision as the flow writes it (the input trigger plus the decision), keyed by customer."""
    now = int(time.time() * 1000)
    cust = f"c-{i % 5000}"
    msg = {
        "trigger_id": tid,
        "ts": now,
        "campaign_id": CAMPAIGN,
        "customer_id": cust,
        "kind": "cart_abandonment",
        "channel": "email",
        "skus": [f"SKU-{i % 300:05d}"],
        "consent": True,
        "decision": "send",
        "decided_ts": now,
    }
    return cust, orjson.dumps(msg)


def paced(producer: Producer, topic: str, prefix: str, rate: float, seconds: float) -> tuple[dict[str, float], float]:
    """Produce `rate`/s for `seconds`, open loop; return each id's produce time (wall s) and the first."""
    produced: dict[str, float] = {}
    n = int(rate * seconds)
    gc.collect()
    gc.disable()  # a collection here would delay produces, not time them
    try:
        start = time.perf_counter()
        sent = 0
        while sent < n:
            want = min(n, int((time.perf_counter() - start) * rate) + 1)
            while sent < want:
                tid = f"{prefix}{sent}"
                key, value = approval(tid, sent)
                produced[tid] = time.time()
                produce(producer, topic, value, key)
                sent += 1
            producer.poll(0)
            time.sleep(0.0002)
    finally:
        gc.enable()
    return produced, min(produced.values())


def cleanup(settings: Settings) -> None:
    """Delete the run's topics and Redis keys (the broker and Redis are shared)."""
    import redis
    from confluent_kafka.admin import AdminClient

    t = settings.topics
    try:
        admin = AdminClient(dict[str, str | int | float | bool](settings.kafka.client_config()))
        for fut in admin.delete_topics([*t.inputs(), *t.outputs(), *t.delivery()], request_timeout=30).values():
            try:
                fut.result()
            except Exception:  # noqa: S110 - a topic never created; nothing to delete
                pass
        r = redis.Redis.from_url(settings.redis.url.get_secret_value())
        keys = list(r.scan_iter(match=f"{settings.redis.prefix}:*", count=5000))
        for i in range(0, len(keys), 5000):
            r.unlink(*keys[i : i + 5000])
        r.close()
    except Exception as exc:  # cleanup is a courtesy: never fail a bench on it
        print(f"deliver_bench: cleanup: {exc}", file=sys.stderr)


def run_system(system: str, args: argparse.Namespace, fake_url: str, fake_pid: int) -> dict[str, Any]:
    """Warm-up, the paced phase and the max phase against one deliverer."""
    extra = dict(kv.split("=", 1) for kv in args.set)
    env = deliver_env(system, fake_url, extra)
    settings = load_settings(env=env)
    for topic, outcome in create_topics(settings):
        if outcome.startswith("failed"):
            sys.exit(f"deliver_bench: cannot create {topic}: {outcome}")
    topic = settings.topics.approved
    kafka = env["KAFKA_BOOTSTRAP_SERVERS"]
    port = free_port()
    metrics = f"http://127.0.0.1:{port}"
    log = Path(tempfile.gettempdir()) / f"deliver-bench-{env['STOCKGUARD_REDIS__PREFIX']}-{system}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockguard.cli", "deliver", system, "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    result: dict[str, Any] = {"system": system, "deliverer_log": str(log), "settings": args.set}
    run = uuid.uuid4().hex[:6]
    try:
        wait_url(metrics + "/readyz")
        producer = Producer({"bootstrap.servers": kafka, "linger.ms": 0, "enable.idempotence": True})
        for i in range(WARM):
            key, value = approval(f"warm-{run}-{i}", i)
            produce(producer, topic, value, key)
        producer.flush(30)
        got = wait_arrivals(fake_url, system, WARM, 30)
        if got < WARM:
            sys.exit(f"deliver_bench: {system}: {got} of {WARM} warm-up approvals arrived (see {log})")
        take_arrivals(fake_url, system)

        pids = {"deliverer": proc.pid, "fake vendor": fake_pid, **service_pids()}
        if args.rate > 0 and args.seconds > 0:
            endpoint = "events" if system == "klaviyo" else "send"
            req0 = histogram(metrics, "stockguard_delivery_request_seconds", system=system, endpoint=endpoint)
            dl0 = histogram(metrics, "stockguard_delivery_seconds", system=system)
            watch = CpuWatch(pids)
            produced, started = paced(producer, topic, f"r-{run}-", args.rate, args.seconds)
            ended = max(produced.values())
            producer.flush(30)
            wait_arrivals(fake_url, system, len(produced), args.drain)
            cpu = watch.shares()
            arrivals = take_arrivals(fake_url, system)
            rate = summarize(produced, arrivals, started, ended)
            req1 = histogram(metrics, "stockguard_delivery_request_seconds", system=system, endpoint=endpoint)
            dl1 = histogram(metrics, "stockguard_delivery_seconds", system=system)
            rate["vendor_round_trip_p50_le_ms"] = bucket_quantile(req0, req1, 0.5) * 1000
            rate["vendor_round_trip_p99_le_ms"] = bucket_quantile(req0, req1, 0.99) * 1000
            rate["kafka_to_accepted_p50_le_ms"] = bucket_quantile(dl0, dl1, 0.5) * 1000
            rate["kafka_to_accepted_p99_le_ms"] = bucket_quantile(dl0, dl1, 0.99) * 1000
            rate["cpu_share"] = cpu
            rate["keeps_up"] = rate["lost"] == 0 and rate["delivered_per_s"] >= 0.98 * rate["offered_per_s"]
            rate["p99_target_met"] = rate["p99_ms"] <= args.p99_target
            result["rate"] = rate

        if args.max_n > 0:
            fast = Producer(
                {
                    "bootstrap.servers": kafka,
                    "linger.ms": 5,
                    "enable.idempotence": True,
                    "queue.buffering.max.messages": 1_000_000,
                }
            )
            watch = CpuWatch(pids)
            produced = {}
            for i in range(args.max_n):
                tid = f"m-{run}-{i}"
                key, value = approval(tid, i)
                produced[tid] = time.time()
                produce(fast, topic, value, key)
            fast.flush(60)
            produced_s = max(produced.values()) - min(produced.values())
            wait_arrivals(fake_url, system, args.max_n, args.drain)
            cpu = watch.shares()
            arrivals = take_arrivals(fake_url, system)
            mx = summarize(produced, arrivals, min(produced.values()), max(produced.values()))
            mx["produce_seconds"] = produced_s
            mx["cpu_share"] = cpu
            result["max"] = mx
        result["outcomes"] = outcomes(metrics)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        cleanup(settings)
    return result


def run_check(rate: float, seconds: float) -> dict[str, Any]:
    """The gateway bench's send-time check phase, on a gateway of its own."""
    env = gateway_env(free_port())  # the Stripe API is never called by a check
    settings = load_settings(env=env)
    for topic, outcome in create_topics(settings):
        if outcome.startswith("failed"):
            sys.exit(f"deliver_bench: cannot create {topic}: {outcome}")
    url = gateway_url(env)
    proc = start_gateway(env)
    try:
        wait_gateway(url)
        cpu0, t0, host0 = cpu_seconds(proc.pid), time.monotonic(), cpu_times()
        chk = asyncio.run(check_phase(url, env, rate, seconds))
        chk["gateway_cpu_share"] = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        chk["machine_busy"], chk["machine_steal"] = busy_and_steal(host0, cpu_times())
        chk["rate"] = rate
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        cleanup(settings)
    return chk


# ---- the table ----


def rows_of(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The printed table."""
    rows = [("vendor service time", f"{result['service_ms']:g} ms (fake vendors in their own process)")]
    for s in result["systems"]:
        name = s["system"]
        if "rate" in s:
            r = s["rate"]
            cpu = r["cpu_share"]
            procs = ", ".join(f"{k} {v:.0%}" for k, v in cpu.items() if not k.startswith("machine"))
            rows += [
                (f"{name}: offered", f"{r['produced']:,} approvals at {r['offered_per_s']:,.0f}/s"),
                (
                    "  delivered",
                    f"{r['delivered']:,} at {r['delivered_per_s']:,.0f}/s; lost {r['lost']}, doubled {r['doubled']}",
                ),
                ("  drain after the last produce", f"{r['drain_after_last_produce_s'] * 1000:,.0f} ms"),
                (
                    "  produced -> vendor request p50 / p90 / p99",
                    f"{r['p50_ms']:.2f} / {r['p90_ms']:.2f} / {r['p99_ms']:.2f} ms",
                ),
                ("  p99.9 / max", f"{r['p999_ms']:.1f} / {r['max_ms']:.1f} ms"),
                ("  p99 per 5 s", " ".join(f"{x:g}" for x in r["p99_ms_per_5s"]) + " ms"),
                (
                    "  vendor round trip p50 / p99 (buckets)",
                    f"<= {r['vendor_round_trip_p50_le_ms']:g} / {r['vendor_round_trip_p99_le_ms']:g} ms",
                ),
                ("  CPU share of a core", procs),
                ("  machine busy / stolen", f"{cpu['machine_busy']:.0%} / {cpu['machine_steal']:.1%}"),
            ]
        if "max" in s:
            m = s["max"]
            cpu = m["cpu_share"]
            rows += [
                (
                    f"{name}: max, {m['produced']:,} at once",
                    f"{m['delivered_per_s']:,.0f} deliveries/s (all in {m['max_ms'] / 1000:.2f} s); "
                    f"lost {m['lost']}, doubled {m['doubled']}",
                ),
                (
                    "  CPU share of a core",
                    ", ".join(f"{k} {v:.0%}" for k, v in cpu.items() if not k.startswith("machine")),
                ),
            ]
        rows.append((f"{name}: deliverer outcomes", ", ".join(f"{k} {v:,}" for k, v in sorted(s["outcomes"].items()))))
    if "check" in result:
        c = result["check"]
        rows += [
            ("send-time check", f"{c['requests']:,} at {c['achieved_rate']:,.0f}/s (bench.gateway_bench's phase)"),
            ("  answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(c["answers"].items()))),
            ("  due -> answer p50 / p99 / p99.9", f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f} / {c['p999_ms']:.2f} ms"),
            ("  gateway CPU share", f"{c['gateway_cpu_share']:.0%} of a core"),
            ("  machine busy / stolen", f"{c.get('machine_busy', 0):.0%} / {c.get('machine_steal', 0):.1%}"),
        ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run every phase and report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000.0, help="approvals/s of the paced phase (default 2000; 0: skip)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the paced phase (default 20)")
    ap.add_argument("--systems", default="klaviyo,braze", help="deliverers, comma-separated (default klaviyo,braze)")
    ap.add_argument("--service-ms", type=float, default=1.0, help="the fake vendor's answer delay (default 1)")
    ap.add_argument("--max-n", type=int, default=20_000, help="approvals of the max phase (default 20000; 0: skip)")
    ap.add_argument("--check-rate", type=float, default=2000.0, help="send-time checks/s (default 2000; 0: skip)")
    ap.add_argument("--check-seconds", type=float, default=10.0, help="length of the check phase (default 10)")
    ap.add_argument("--drain", type=float, default=15.0, help="give up after this many s without an arrival")
    ap.add_argument("--p99-target", type=float, default=20.0, help="ms (default 20)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="extra environment of the deliverers"
    )
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "deliver.json"))
    ap.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    # A SIGTERM (timeout, Ctrl-C's cousin) still stops the deliverer and the fake below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.serve_fake:
        serve_fake(args.serve_fake, args.service_ms)
        return 0

    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.deliver_bench",
            "--serve-fake",
            str(fake_port),
            "--service-ms",
            str(args.service_ms),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    result: dict[str, Any] = {
        "rate": args.rate,
        "seconds": args.seconds,
        "service_ms": args.service_ms,
        "max_n": args.max_n,
        "cores": os.cpu_count(),
        "systems": [],
    }
    try:
        wait_url(fake_url + "/_bench/count")
        for system in [s.strip() for s in args.systems.split(",") if s.strip()]:
            result["systems"].append(run_system(system, args, fake_url, fake.pid))
        count = get_json(fake_url + "/_bench/count")
        result["fake_refused"] = count["refused"]
    finally:
        os.killpg(fake.pid, signal.SIGTERM)
        fake.wait(30)
    if args.check_rate > 0:
        result["check"] = run_check(args.check_rate, args.check_seconds)
    report(rows_of(result), result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
