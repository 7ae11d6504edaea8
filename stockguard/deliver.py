"""`stockguard deliver klaviyo|braze|shoppingfeed`: one vendor's deliverer until SIGTERM.

Wires `stockguard.connectors.delivery` from the settings: the vendor's planner and HTTP
client (auth headers from its secret), the delivered-ids record in Redis, a consumer
group `{delivery.group_prefix}-{system}` on the decision and stock-view topics, the
delivery DLQ producer, and `/metrics`, `/healthz`, `/readyz` on `delivery.host:port`.
A stop finishes the batch in flight and commits what the vendor accepted.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stockguard.config.settings import Settings
from stockguard.connectors.delivery.engine import Deliverer, topics_for
from stockguard.connectors.delivery.http import VendorHttp
from stockguard.connectors.delivery.kafka_io import KafkaDlq, KafkaIncoming
from stockguard.connectors.delivery.record import RedisRecord
from stockguard.observability import setup_logging
from stockguard.state.delivery import klaviyo
from stockguard.state.delivery.plan import BrazePlanner, KlaviyoPlanner, Planner, ShoppingfeedPlanner

__all__ = ["planner_and_http", "run_deliverer"]

log = logging.getLogger("stockguard.deliver")


def planner_and_http(settings: Settings, system: str) -> tuple[Planner, VendorHttp]:
    """Return the vendor's planner and its HTTP client with auth headers."""
    d = settings.delivery
    timeouts = (d.timeout / 1000, d.connect_timeout / 1000, d.concurrency)
    if system == "klaviyo":
        k = settings.klaviyo
        headers = klaviyo.headers(k.api_key.get_secret_value(), k.revision)
        return KlaviyoPlanner(k.approved_metric, k.retracted_metric), VendorHttp(k.api_base, headers, *timeouts)
    json = {"Content-Type": "application/json", "Accept": "application/json"}
    if system == "braze":
        b = settings.braze
        headers = {**json, "Authorization": f"Bearer {b.api_key.get_secret_value()}"}
        return BrazePlanner(dict(b.campaigns), b.catalog), VendorHttp(b.api_base, headers, *timeouts)
    if system == "shoppingfeed":
        s = settings.shoppingfeed
        headers = {**json, "Authorization": f"Bearer {s.token.get_secret_value()}"}
        return ShoppingfeedPlanner(s.catalog_id), VendorHttp(s.api_base, headers, *timeouts)
    raise ValueError(f"no deliverer for {system!r}: klaviyo, braze or shoppingfeed")


async def _serve(settings: Settings, system: str, port: int) -> None:
    planner, http = planner_and_http(settings, system)
    conf = settings.kafka.client_config()
    r = settings.redis
    record = RedisRecord(r.url.get_secret_value(), r.prefix, system, settings.delivery.record_ttl)
    dlq = KafkaDlq(conf, settings.topics.delivery_dlq)
    source = KafkaIncoming(conf, f"{settings.delivery.group_prefix}-{system}", list(topics_for(settings, planner)))
    deliverer = Deliverer(settings, planner, http, record, source, dlq)

    async def metrics(_r: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_r: web.Request) -> web.Response:
        return web.json_response({"ready": deliverer.ready}, status=200 if deliverer.ready else 503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.delivery.host, port).start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, deliverer.stop)
    log.info("deliverer started", extra={"sg_system": system, "sg_topics": deliverer.topics})
    try:
        await deliverer.run()
    finally:
        await source.close()
        await http.close()
        await record.close()
        await runner.cleanup()
        log.info("deliverer stopped", extra={"sg_system": system, "sg_outcomes": dict(deliverer.outcomes)})


def run_deliverer(settings: Settings, system: str, port: int | None = None) -> None:
    """Deliver until SIGTERM/SIGINT."""
    setup_logging(settings.log_format, settings.log_level)
    uvloop.run(_serve(settings, system, port if port is not None else settings.delivery.port))
