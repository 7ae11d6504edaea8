"""Webhook -> Kafka-acknowledged latency at a fixed rate, and sustained webhooks/s, on loopback.

    bash scripts/services.sh start
    .venv/bin/python -m bench.gateway_bench --rate 1000 --seconds 20

Starts `stockguard gateway` (one process, Redis state, the real local Kafka, its own
topics) and a fake Stripe API for line items, then:

1. **latency**: sends the simulated day's webhooks (GA4, Klaviyo, Braze, Shopify and
   Stripe in the day's own mix, each signed as its vendor signs) open loop at `--rate`
   per second from a separate process; a request's latency runs from when it was *due*
   (not when the client got round to it, so a stall is not hidden) to its 2xx, which the
   gateway sends only after Kafka acknowledged every record;
2. **throughput**: `wrk` (Debian's, one thread) posts Klaviyo webhooks with unique trigger
   ids as fast as the gateway answers, for `--seconds`; without wrk, an aiohttp client
   with 64 connections does.

3. **send-time check**: `GET /v1/triggers/{id}` open loop at `--check-rate` (2,000/s)
   over 10,000 decisions written to Redis as the flow writes them.

The gateway's CPU share is read from /proc. With `--pin` the gateway has cpu 0 to itself
and the load client, wrk and the local Kafka and Redis share cpu 1, so the figure is the
gateway's rather than the two cores' contention. Prints a table and writes JSON (default
bench/results/gateway.json).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import report
from stockguard.config.settings import load_settings, topic_env
from stockguard.live import create_topics
from stockguard.sim import SimConfig, simulate
from stockguard.via_gateway import FakeStripe
from stockguard.webhooks import Request, WebhookDay, shopify_locations

ROOT = Path(__file__).resolve().parent.parent
LOCATIONS = ("WH-PARIS", "WH-LYON", "WH-LILLE")
TOKEN = "bench-token"  # noqa: S105 - a local bench gateway's token


def free_port() -> int:
    """Return a free loopback port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_env(stripe_port: int) -> dict[str, str]:
    """The gateway's environment: its own topics, secrets, Redis state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    env.update(topic_env(f"bench-gw-{uuid.uuid4().hex[:6]}."))
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "STOCKGUARD_REDIS__PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
            "STOCKGUARD_GATEWAY__PORT": str(free_port()),
            "STOCKGUARD_SHOPIFY__WEBHOOK_SECRET": "shpss_bench",
            "STOCKGUARD_SHOPIFY__LOCATIONS": json.dumps(shopify_locations(LOCATIONS)),
            "STOCKGUARD_STRIPE__WEBHOOK_SECRET": "whsec_bench",
            "STOCKGUARD_STRIPE__API_KEY": "sk_test_bench",
            "STOCKGUARD_STRIPE__API_BASE": f"http://127.0.0.1:{stripe_port}",
            "STOCKGUARD_KLAVIYO__WEBHOOK_TOKEN": TOKEN,
            "STOCKGUARD_BRAZE__WEBHOOK_TOKEN": TOKEN,
            "STOCKGUARD_GA4__API_SECRET": TOKEN,
            "STOCKGUARD_GATEWAY__API_TOKEN": TOKEN,
            "STOCKGUARD_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_buckets(url: str) -> dict[float, float]:
    """The gateway's own request histogram (all systems): cumulative count per bucket bound."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # noqa: S310 - loopback
        text = r.read().decode()
    out: dict[float, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "stockguard_gateway_request_seconds":
            for smp in fam.samples:
                if smp.name.endswith("_bucket"):
                    le = float(smp.labels["le"])
                    out[le] = out.get(le, 0.0) + smp.value
    return out


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The smallest bucket bound holding the q-quantile of the requests between two scrapes."""
    bounds = sorted(after)
    total = after[bounds[-1]] - before.get(bounds[-1], 0.0)
    for b in bounds:
        if after[b] - before.get(b, 0.0) >= q * total:
            return b
    return float("inf")


def cpu_times() -> list[int]:
    """The machine's CPU time counters (user, nice, system, idle, iowait, irq, softirq, steal)."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def busy_and_steal(before: list[int], after: list[int]) -> tuple[float, float]:
    """Share of all cores busy, and stolen by the hypervisor, between two readings."""
    d = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(d) or 1
    return 1 - (d[3] + d[4]) / total, d[7] / total


PINNED_SERVICES: list[int] = []


def unpin_services() -> None:
    """Give the local services every core again."""
    every = set(range(os.cpu_count() or 1))
    for pid in PINNED_SERVICES:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), every)
            except OSError:
                pass  # a thread that ended meanwhile


def pin_others() -> list[str]:
    """Put this process (the load client, and wrk it starts) and the local services on cpu 1."""
    os.sched_setaffinity(0, {1})
    done = ["load client -> cpu 1"]
    run = Path(os.environ.get("STOCKGUARD_RUN_DIR", "/tmp/stockguard-services"))  # noqa: S108 - services.sh's default
    for name, pidfile in (("kafka", run / "kafka" / "kafka.pid"), ("redis", run / "redis" / "redis.pid")):
        try:
            pid = int(pidfile.read_text())
            for task in Path(f"/proc/{pid}/task").iterdir():  # every thread of the JVM
                os.sched_setaffinity(int(task.name), {1})
            PINNED_SERVICES.append(pid)
            done.append(f"{name} {pid} -> cpu 1")
        except (OSError, ValueError):
            done.append(f"{name}: not a local service of scripts/services.sh, left unpinned")
    return done


def pct(values: list[float], q: float) -> float:
    """Return the q-quantile (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))] if s else float("nan")


def day_requests(env: dict[str, str], n: int) -> tuple[list[Request], list[Request], WebhookDay]:
    """The catalog and opening stock (warm-up), then `n` webhooks of the day's mix."""
    settings = load_settings(env=env)
    now = int(time.time() * 1000)
    cfg = SimConfig(seed=11, hours=24.0, start_ts=now - 24 * 3_600_000, bad_fraction=0.0)
    webhooks = WebhookDay(settings, cfg.locations, time.time)
    warm: list[Request] = []
    measured: list[Request] = []
    for topic, key, value in simulate(cfg):
        for item in webhooks.translate(topic, key, value):
            if not isinstance(item, Request):
                continue
            opening = item.system == "shopify" and (item.barrier or item.ts == cfg.start_ts)
            (warm if opening and not measured else measured).append(item)
        if len(measured) >= n:
            break
    return warm, measured[:n], webhooks


async def open_loop(n: int, rate: float, fire: Callable[[int, float], Awaitable[None]]) -> tuple[float, float]:
    """Start request `i` when it is due, `i / rate` s after the start, whatever is in flight.

    Return (start, seconds until the last answer). Each request's latency counts from
    when it was due, so a stall of the client is not hidden.
    """
    # The load generator must not pause itself: a collection here would show up as the
    # gateway's latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        tasks = []
        t0 = time.perf_counter() + 0.2
        for i in range(n):
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.ensure_future(fire(i, due)))
        await asyncio.gather(*tasks)
        return t0, time.perf_counter() - t0
    finally:
        gc.enable()


async def latency_phase(url: str, warm: list[Request], reqs: list[Request], rate: float) -> dict[str, Any]:
    """Send `reqs` open loop at `rate`/s; latency from due time to answer."""
    lat: dict[str, list[float]] = {}
    timeline: list[tuple[float, float]] = []
    answers: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        for r in warm:  # the catalog first: inventory levels need its sku map
            async with session.post(url + r.path, data=r.body, headers=r.headers_now()) as resp:
                await resp.read()
        # Then a steady state, unmeasured: each endpoint's first request opens connections.
        for r in reqs[-200:]:
            async with session.post(url + r.path, data=r.body, headers=r.headers_now()) as resp:
                await resp.read()
        reqs = reqs[:-200]

        async def one(i: int, due: float) -> None:
            r = reqs[i]
            async with session.post(url + r.path, data=r.body, headers=r.headers_now()) as resp:
                await resp.read()
                took = time.perf_counter() - due
                lat.setdefault(r.system, []).append(took)
                timeline.append((due, took))
                answers[str(resp.status)] += 1

        t0, elapsed = await open_loop(len(reqs), rate, one)
    timeline = [(due - t0, took) for due, took in timeline]
    every = [x for xs in lat.values() for x in xs]
    # Slow requests bunched in a few 100 ms windows point at stalls (a pause of the host,
    # the broker or the client), spread evenly at queueing in the gateway.
    slow = sorted({int(at * 10) for at, took in timeline if took > 0.010})
    return {
        "slow_over_10ms": sum(1 for _at, took in timeline if took > 0.010),
        "slow_windows_100ms": len(slow),
        "requests": len(every),
        "achieved_rate": len(every) / elapsed,
        "answers": dict(answers),
        "p50_ms": pct(every, 0.50) * 1000,
        "p90_ms": pct(every, 0.90) * 1000,
        "p99_ms": pct(every, 0.99) * 1000,
        "p999_ms": pct(every, 0.999) * 1000,
        "max_ms": max(every) * 1000,
        "by_system": {
            s: {"n": len(x), "p50_ms": pct(x, 0.5) * 1000, "p99_ms": pct(x, 0.99) * 1000} for s, x in lat.items()
        },
    }


async def check_phase(url: str, env: dict[str, str], rate: float, seconds: float) -> dict[str, Any]:
    """The send-time check open loop at `rate`/s over decisions written as the flow writes them."""
    import redis.asyncio as aioredis

    from stockguard.state.sendtime import record_of

    prefix = env["STOCKGUARD_REDIS__PREFIX"]
    r = aioredis.from_url(env["REDIS_URL"])
    n_ids = 10_000
    async with r.pipeline(transaction=False) as pipe:
        for i in range(n_ids):
            rec = record_of("approved", {"trigger_id": f"chk-{i}", "decision": "send", "skus": [f"SKU-{i % 300}"]})
            if rec is None:
                raise RuntimeError("record_of refused an approved decision")
            fields: dict[str | bytes, bytes | float | int | str] = {k: v for k, v in rec[1].items()}
            pipe.hset(f"{prefix}:trigger:{rec[0]}", mapping=fields)
            pipe.expire(f"{prefix}:trigger:{rec[0]}", 3600)
        await pipe.execute()
    await r.aclose()  # type: ignore[attr-defined]  # redis 8 has it; the stubs predate it
    lat: list[float] = []
    answers: Counter[str] = Counter()
    headers = {"X-Stockguard-Token": TOKEN}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(i: int, due: float) -> None:
            async with session.get(f"{url}/v1/triggers/chk-{i % n_ids}", headers=headers) as resp:
                body = await resp.json()
                lat.append(time.perf_counter() - due)
                answers[f"{resp.status} {body.get('decision')}"] += 1

        for i in range(200):  # warm the connections
            await one(i, time.perf_counter())
        lat.clear()
        answers.clear()
        _t0, elapsed = await open_loop(int(rate * seconds), rate, one)
    return {
        "requests": len(lat),
        "achieved_rate": len(lat) / elapsed,
        "answers": dict(answers),
        "p50_ms": pct(lat, 0.5) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "p999_ms": pct(lat, 0.999) * 1000,
    }


def gateway_url(env: dict[str, str]) -> str:
    """The base URL of the gateway `gateway_env` configures."""
    return f"http://127.0.0.1:{env['STOCKGUARD_GATEWAY__PORT']}"


def start_gateway(env: dict[str, str], pin: bool = False) -> subprocess.Popen[bytes]:
    """Start `stockguard gateway` in a session of its own (cpu 0 alone with `pin`)."""
    taskset = shutil.which("taskset")
    # Pinned from its first instruction, so the threads librdkafka starts inherit it.
    prefix = [taskset, "-c", "0"] if pin and taskset else []
    cmd = [*prefix, sys.executable, "-m", "stockguard.cli", "gateway"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)


def wait_gateway(url: str, timeout: float = 60) -> None:
    """Wait until the gateway's /readyz answers 200; exit when it does not within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("gateway_bench: the gateway did not become ready")
            time.sleep(0.2)


WRK_LUA = """
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Stockguard-Token"] = "%s"
template = '{"trigger_id":"wrk-%%s-%%d","campaign_id":"cm-bench","kind":"cart_abandonment",'
  .. '"channel":"email","customer_id":"c-%%d","skus":["SKU-%%d"]}'
request = function()
  counter = counter + 1
  local body = string.format(template, "%s", counter, counter %% 5000, counter %% 300)
  return wrk.format(nil, "/webhooks/klaviyo", nil, body)
end
"""


def throughput_wrk(url: str, seconds: float, connections: int) -> dict[str, Any]:
    """Run wrk (one thread) against the Klaviyo endpoint; parse its summary."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_LUA % (TOKEN, uuid.uuid4().hex[:8]))
        script = fh.name
    wrk = shutil.which("wrk") or "wrk"
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script)
    rps = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec"))
    non2xx = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    p99 = next((line.split()[1] for line in out.splitlines() if line.strip().startswith("99%")), "?")
    return {"tool": "wrk -t1", "connections": connections, "requests_per_s": rps, "non_2xx": non2xx, "p99": p99}


async def throughput_aiohttp(url: str, seconds: float, connections: int) -> dict[str, Any]:
    """Closed loop with `connections` concurrent clients against the Klaviyo endpoint."""
    done = 0
    bad = 0
    run = uuid.uuid4().hex[:8]
    stop = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json", "X-Stockguard-Token": TOKEN}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker(w: int) -> None:
            nonlocal done, bad
            i = 0
            while time.perf_counter() < stop:
                i += 1
                body = json.dumps(
                    {
                        "trigger_id": f"py-{run}-{w}-{i}",
                        "campaign_id": "cm-bench",
                        "kind": "cart_abandonment",
                        "customer_id": f"c-{i % 5000}",
                        "skus": [f"SKU-{i % 300}"],
                    }
                )
                async with session.post(url + "/webhooks/klaviyo", data=body, headers=headers) as resp:
                    await resp.read()
                    done += 1
                    bad += resp.status != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(connections)))
    return {
        "tool": "aiohttp",
        "connections": connections,
        "requests_per_s": done / (time.perf_counter() - t0),
        "non_2xx": bad,
    }


def main() -> int:
    """Run both phases and report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000.0, help="webhooks/s in the latency phase (default 1000)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase (default 20)")
    ap.add_argument("--connections", type=int, default=32, help="connections in the throughput phase (default 32)")
    ap.add_argument("--latency-only", action="store_true", help="skip the throughput phase")
    ap.add_argument("--check-rate", type=float, default=2000.0, help="send-time checks/s (default 2000; 0: skip)")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="gateway alone on cpu 0; this client, wrk and the local Kafka and Redis on cpu 1",
    )
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "gateway.json"))
    args = ap.parse_args()

    stripe_port = free_port()
    env = gateway_env(stripe_port)
    settings = load_settings(env=env)
    for topic, outcome in create_topics(settings):
        if outcome.startswith("failed"):
            sys.exit(f"gateway_bench: cannot create {topic}: {outcome}")
    warm, reqs, webhooks = day_requests(env, int(args.rate * args.seconds))
    url = gateway_url(env)
    pinned = pin_others() if args.pin else []
    proc = start_gateway(env, pin=args.pin)
    if args.pin:
        pinned.append(f"gateway {proc.pid} -> cpu 0")
    result: dict[str, Any] = {"rate": args.rate, "seconds": args.seconds, "cores": os.cpu_count(), "pinned": pinned}
    try:
        wait_gateway(url)

        async def latency() -> dict[str, Any]:
            stripe = FakeStripe(webhooks.line_items, "sk_test_bench")
            await stripe.start(stripe_port)
            try:
                return await latency_phase(url, warm, reqs, args.rate)
            finally:
                await stripe.stop()

        cpu0, t0, own0, host0 = cpu_seconds(proc.pid), time.monotonic(), time.process_time(), cpu_times()
        buckets0 = server_buckets(url)
        result["latency"] = asyncio.run(latency())
        result["latency"]["client_cpu_share"] = (time.process_time() - own0) / (time.monotonic() - t0)
        busy, steal = busy_and_steal(host0, cpu_times())
        result["latency"]["machine_busy"], result["latency"]["machine_steal"] = busy, steal
        buckets1 = server_buckets(url)
        # Inside the gateway (arrival -> answer), bucket bounds: what the client adds is not in it.
        result["latency"]["server_p50_le_ms"] = bucket_quantile(buckets0, buckets1, 0.5) * 1000
        result["latency"]["server_p99_le_ms"] = bucket_quantile(buckets0, buckets1, 0.99) * 1000
        result["latency"]["gateway_cpu_share"] = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)

        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        if args.latency_only:
            result["throughput"] = {"tool": "skipped", "connections": 0, "requests_per_s": 0.0, "non_2xx": 0}
        elif shutil.which("wrk"):
            result["throughput"] = throughput_wrk(url, args.seconds, args.connections)
        else:
            result["throughput"] = asyncio.run(throughput_aiohttp(url, args.seconds, 64))
        result["throughput"]["gateway_cpu_share"] = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        if args.check_rate > 0:
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            result["check"] = asyncio.run(check_phase(url, env, args.check_rate, args.seconds))
            result["check"]["gateway_cpu_share"] = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        unpin_services()

    lat, thr = result["latency"], result["throughput"]
    mix = ", ".join(f"{s} {v['n']:,}" for s, v in sorted(lat["by_system"].items()))
    rows = [
        ("pinned", "; ".join(pinned) or "no (--pin puts the gateway on a core of its own)"),
        ("latency phase: webhooks", f"{lat['requests']:,} at {lat['achieved_rate']:,.0f}/s ({mix})"),
        ("answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(lat["answers"].items()))),
        ("due -> 2xx after Kafka ack p50", f"{lat['p50_ms']:.2f} ms"),
        ("p90 / p99 / p99.9", f"{lat['p90_ms']:.2f} / {lat['p99_ms']:.2f} / {lat['p999_ms']:.2f} ms"),
        ("max", f"{lat['max_ms']:.1f} ms"),
        ("requests over 10 ms", f"{lat['slow_over_10ms']:,}, in {lat['slow_windows_100ms']} windows of 100 ms"),
        (
            "inside the gateway p50 / p99 (bucket bounds)",
            f"<= {lat['server_p50_le_ms']:g} / {lat['server_p99_le_ms']:g} ms",
        ),
        *[
            (f"  {s} p50 / p99", f"{v['p50_ms']:.2f} / {v['p99_ms']:.2f} ms")
            for s, v in sorted(lat["by_system"].items())
        ],
        (
            "CPU share, gateway / load client",
            f"{lat['gateway_cpu_share']:.0%} / {lat['client_cpu_share']:.0%} of a core",
        ),
        ("both cores busy / stolen by the host", f"{lat['machine_busy']:.0%} / {lat['machine_steal']:.1%}"),
        (f"sustained ({thr['tool']}, {thr['connections']} conns)", f"{thr['requests_per_s']:,.0f} webhooks/s"),
        ("non-2xx", f"{thr['non_2xx']:,}"),
        ("gateway CPU share (throughput phase)", f"{thr['gateway_cpu_share']:.0%} of a core"),
    ]
    if "check" in result:
        chk = result["check"]
        rows += [
            ("send-time check: requests", f"{chk['requests']:,} at {chk['achieved_rate']:,.0f}/s"),
            ("answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(chk["answers"].items()))),
            ("due -> answer p50 / p99 / p99.9", f"{chk['p50_ms']:.2f} / {chk['p99_ms']:.2f} / {chk['p999_ms']:.2f} ms"),
            ("gateway CPU share (check phase)", f"{chk['gateway_cpu_share']:.0%} of a core"),
        ]
    report(rows, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
