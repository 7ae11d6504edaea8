"""The simulated day through `stockguard gateway`: the demo's and the load generator's way in.

`send_day` posts `stockguard.webhooks` requests to a gateway, paced by event time,
a few in flight, retrying a 503 after its `Retry-After` (as the vendors do) and a refused
connection (a gateway restarting), and counts every answer. `FakeStripe` answers the
gateway's line-item reads for the checkouts of the day, checking the bearer key as
Stripe does. `run_demo_via_gateway` is `stockguard demo --via-gateway`: the gateway runs
in this process on a loopback port with a publisher that hands its records to the
dataflow instead of Kafka, so the whole path (signatures, mapping, dedup) is seen with no
broker; `run_loadgen_via_gateway` drives a running gateway, whose Kafka feeds
`stockguard run`.
"""

from __future__ import annotations

import asyncio
import queue
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson
from aiohttp import web
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from stockguard.config.settings import SecretStr, Settings
from stockguard.connectors.files import JsonlSink, OutputStats
from stockguard.connectors.gateway.app import Gateway, build_app
from stockguard.connectors.gateway.publisher import Publisher, Record
from stockguard.connectors.gateway.store import MemoryStore
from stockguard.connectors.gateway.stripe_api import StripeApi
from stockguard.flows.dataflow import build_flow
from stockguard.flows.records import RawRecord
from stockguard.flows.runner import run_local
from stockguard.sim import SimConfig, simulate
from stockguard.summary import print_table, summary_rows
from stockguard.webhooks import Passthrough, Request, WebhookDay, shopify_locations

__all__ = ["FakeStripe", "SendStats", "run_demo_via_gateway", "run_loadgen_via_gateway", "send_day"]

_END = object()


@dataclass
class SendStats:
    """What the gateway answered, by system and outcome, and how often a request was retried."""

    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries: int = 0
    sim_now: int = 0  # the event time of the newest request sent: the day's "now"

    def rows(self) -> list[tuple[str, str]]:
        """Tabulate the answers."""
        rows = [(f"gateway {system}: {outcome}", f"{n:,}") for (system, outcome), n in sorted(self.answers.items())]
        return [*rows, ("gateway retries (503 or no connection)", f"{self.retries:,}")]


class FakeStripe:
    """Serve `GET /v1/checkout/sessions/{id}/line_items` for the day's checkouts, on loopback."""

    def __init__(self, line_items: dict[str, dict[str, Any]], api_key: str) -> None:
        self.line_items = line_items
        self.api_key = api_key
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _line_items(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}, status=401
            )
        listing = self.line_items.get(request.match_info["sid"])
        if listing is None or request.query.get("expand[]") != "data.price.product":
            return web.json_response(
                {"error": {"type": "invalid_request_error", "code": "resource_missing"}}, status=404
            )
        return web.json_response(listing)

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Listen (on loopback unless told) and return the base URL."""
        app = web.Application()
        app.router.add_get("/v1/checkout/sessions/{sid}/line_items", self._line_items)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self.runner is not None:
            await self.runner.cleanup()


async def _post(session: aiohttp.ClientSession, base: str, req: Request, stats: SendStats) -> None:
    """Post one webhook until the gateway answers anything but 503 (as a vendor retries)."""
    while True:
        try:
            async with session.post(base + req.path, data=req.body, headers=req.headers_now()) as resp:
                if resp.status == 503:
                    stats.retries += 1
                    await asyncio.sleep(min(float(resp.headers.get("Retry-After", "1")), 5.0))
                    continue
                outcome = str(resp.status)
                if resp.status == 200:
                    body = await resp.json(content_type=None)
                    outcome = str(body.get("status", "200")) if isinstance(body, dict) else "200"
                stats.answers[req.system, outcome] += 1
                return
        except (aiohttp.ClientConnectionError, TimeoutError):
            stats.retries += 1
            await asyncio.sleep(0.5)


async def send_day(
    base_url: str,
    items: Iterable[Request | Passthrough],
    *,
    speed: float,
    start_ts: int,
    stats: SendStats,
    passthrough: Callable[[Passthrough], None],
    concurrency: int = 16,
) -> None:
    """Post every request when its event time is due at `speed` x real time (inf: at once)."""
    t0 = time.monotonic()
    limit = asyncio.Semaphore(concurrency)
    inflight: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(req: Request) -> None:
            try:
                await _post(session, base_url, req, stats)
            finally:
                limit.release()

        for item in items:
            if item.ts > stats.sim_now:
                if speed != float("inf"):
                    wait = t0 + (item.ts - start_ts) / 1000 / speed - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                stats.sim_now = item.ts
            if isinstance(item, Passthrough):
                passthrough(item)
                continue
            if item.barrier and inflight:  # products are learned before the levels that name them
                await asyncio.gather(*inflight)
            await limit.acquire()
            task = asyncio.ensure_future(one(item))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            if item.barrier:
                await task
        if inflight:
            await asyncio.gather(*inflight)


def _day(webhooks: WebhookDay, messages: Iterable[tuple[str, str | None, Any]]) -> Iterator[Request | Passthrough]:
    for topic, key, value in messages:
        yield from webhooks.translate(topic, key, value)
    yield from webhooks.finish()


def demo_secrets(settings: Settings, locations: tuple[str, ...]) -> Settings:
    """Give every vendor a fresh secret for one in-process run, and the location table."""

    def secret() -> SecretStr:
        return SecretStr(secrets.token_hex(16))

    s = settings
    return replace(
        s,
        gateway=replace(s.gateway, state="memory"),
        shopify=replace(s.shopify, webhook_secret=secret(), locations=shopify_locations(locations)),
        stripe=replace(s.stripe, webhook_secret=secret(), api_key=secret()),
        klaviyo=replace(s.klaviyo, webhook_token=secret()),
        braze=replace(s.braze, webhook_token=secret()),
        ga4=replace(s.ga4, api_secret=secret()),
    )


async def send_in_process(
    s: Settings,
    cfg: SimConfig,
    publisher: Publisher,
    stats: SendStats,
    passthrough: Callable[[Passthrough], None],
    *,
    speed: float,
) -> WebhookDay:
    """Serve a gateway over `publisher` and a fake Stripe on loopback, and send the day to it."""
    webhooks = WebhookDay(s, cfg.locations, time.time)
    stripe = FakeStripe(webhooks.line_items, s.stripe.api_key.get_secret_value())
    await stripe.start()
    # Arrival times (Klaviyo and Braze triggers) are the day's simulated "now".
    gateway = Gateway(s, publisher, MemoryStore(), clock_ms=lambda: stats.sim_now)
    runner = web.AppRunner(build_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as client:
            gateway.stripe_api = StripeApi(client, stripe.url, s.stripe.api_key.get_secret_value(), 10.0)
            await send_day(
                f"http://127.0.0.1:{runner.addresses[0][1]}",
                _day(webhooks, simulate(cfg)),
                speed=speed,
                start_ts=cfg.start_ts,
                stats=stats,
                passthrough=passthrough,
            )
    finally:
        await runner.cleanup()
        await stripe.stop()
    for reason, n in webhooks.skipped.items():
        stats.answers["sim", f"skipped {reason}"] += n
    return webhooks


# ---- the demo: gateway in process, records handed to the dataflow ----


class LoopbackPublisher:
    """Hand the gateway's records to the dataflow's queue: "acknowledged" once queued."""

    def __init__(self, into: queue.Queue[Any], dlq_topic: str, dlq_path: Path) -> None:
        self.into = into
        self.dlq_topic = dlq_topic
        self.dlq_path = dlq_path
        self.offset = 0

    def publish(self, loop: asyncio.AbstractEventLoop, records: Sequence[Record]) -> asyncio.Future[None]:
        """Queue the records (dead letters go to their own file: the flow does not read them)."""
        for topic, key, value in records:
            if topic == self.dlq_topic:
                with self.dlq_path.open("ab") as fh:
                    fh.write(value + b"\n")
                continue
            self.into.put(RawRecord(topic, key.encode() if key is not None else None, value, 0, self.offset))
            self.offset += 1
        fut: asyncio.Future[None] = loop.create_future()
        fut.set_result(None)
        return fut

    def close(self, timeout_s: float) -> int:
        """Nothing is ever left unacknowledged."""
        return 0


class _QueuePartition(StatefulSourcePartition[RawRecord, None]):
    def __init__(self, q: queue.Queue[Any]) -> None:
        self.q = q
        self.done = False

    def next_batch(self) -> list[RawRecord]:
        if self.done:
            raise StopIteration
        out: list[RawRecord] = []
        while len(out) < 5000:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self.done = True
                break
            out.append(item)
        return out

    def next_awake(self) -> datetime | None:
        return None if self.done or not self.q.empty() else datetime.now(UTC) + timedelta(milliseconds=5)

    def snapshot(self) -> None:
        return None


class QueueSource(FixedPartitionedSource[RawRecord, None]):
    """The records the in-process gateway produced, in the order it produced them."""

    def __init__(self, q: queue.Queue[Any]) -> None:
        self.q = q

    def list_parts(self) -> list[str]:
        """List the single partition."""
        return ["gateway"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _QueuePartition:
        """Read the queue (a demo does not resume)."""
        return _QueuePartition(self.q)


def run_demo_via_gateway(
    settings: Settings,
    seed: int = 42,
    speed: float = 1440.0,
    out_dir: str | Path = "out/demo",
    hours: float = 24.0,
    stream: TextIO | None = None,
) -> int:
    """Send the simulated day as signed webhooks through an in-process gateway into the flow."""
    stream = stream or sys.stdout
    cfg = SimConfig(seed=seed, hours=hours)
    s = demo_secrets(settings, cfg.locations)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gateway_dlq = out / "gateway.dlq.jsonl"
    gateway_dlq.unlink(missing_ok=True)
    q: queue.Queue[Any] = queue.Queue(maxsize=200_000)
    stats = SendStats()
    failed: list[BaseException] = []
    stream.write(
        f"stockguard demo --via-gateway: {hours:g} h (seed {seed}) as signed Shopify, Stripe, Klaviyo, "
        f"Braze and GA4 webhooks through the gateway into the flow; outputs in {out}/\n"
    )

    def passthrough(p: Passthrough) -> None:
        q.put(RawRecord(p.topic, p.key.encode() if p.key else None, orjson.dumps(p.value), 0, -1))

    async def drive() -> None:
        publisher = LoopbackPublisher(q, s.topics.dlq, gateway_dlq)
        await send_in_process(s, cfg, publisher, stats, passthrough, speed=speed)

    def background() -> None:
        try:
            asyncio.run(drive())
        except BaseException as exc:  # the flow must still end
            failed.append(exc)
        finally:
            q.put(_END)

    outputs = OutputStats()
    flow = build_flow(s, {"gateway": QueueSource(q)}, {"files": JsonlSink(out, outputs)})
    thread = threading.Thread(target=background, name="gateway-driver", daemon=True)
    start = time.monotonic()
    thread.start()
    run_local(flow, epoch_ms=1000)
    thread.join()
    if failed:
        stream.write(f"stockguard demo --via-gateway: the driver failed: {failed[0]!r}\n")
        return 1
    events = sum(n for (system, _o), n in stats.answers.items() if system != "sim")
    print_table(summary_rows(s, outputs, events, time.monotonic() - start) + stats.rows(), stream)
    # The day in pictures, as the plain demo writes it (no input: the day came as webhooks,
    # so the campaign money is left out and the page says so).
    from stockguard.report import write_report

    write_report(s, out, out / "report.html")
    stream.write(f"report: {out / 'report.html'}\n")
    return 0


# ---- the load generator: a running gateway, Kafka behind it ----


def run_loadgen_via_gateway(
    settings: Settings,
    url: str,
    *,
    seed: int = 42,
    speed: float = 1.0,
    hours: float = 24.0,
    stripe_port: int = 12111,
    stripe_host: str = "127.0.0.1",
    stream: TextIO = sys.stderr,
) -> int:
    """Send a simulated day, starting now, as signed webhooks to the gateway at `url`.

    The gateway must share our vendor secrets and have `stripe.api_base` at
    http://127.0.0.1:`stripe_port` (where the day's line items are served). Klaviyo and
    Braze triggers take their arrival time (INTEGRATIONS.md), so the day starts at the
    current minute; above 1x the triggers' times fall behind the rest of the day.
    """
    from confluent_kafka import Producer

    now = int(time.time() * 1000)
    cfg = SimConfig(seed=seed, hours=hours, start_ts=now - now % 60_000)
    if speed > 1:
        stream.write("loadgen --via-gateway: triggers carry their arrival time; above 1x they lag the day\n")
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True})
    names = settings.topics.from_contract()
    stats = SendStats()

    def passthrough(p: Passthrough) -> None:
        producer.produce(names[p.topic], orjson.dumps(p.value), p.key)
        producer.poll(0)

    async def drive() -> None:
        webhooks = WebhookDay(settings, cfg.locations, time.time)
        stripe = FakeStripe(webhooks.line_items, settings.stripe.api_key.get_secret_value())
        await stripe.start(stripe_port, stripe_host)
        try:
            await send_day(
                url.rstrip("/"),
                _day(webhooks, simulate(cfg)),
                speed=speed,
                start_ts=cfg.start_ts,
                stats=stats,
                passthrough=passthrough,
            )
        finally:
            await stripe.stop()

    asyncio.run(drive())
    left = producer.flush(30)
    print_table(stats.rows(), stream)
    return 0 if left == 0 else 1
