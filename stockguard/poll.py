"""`stockguard poll shoppingfeed`: read the store's new marketplace orders into `shop.orders`.

Wires `connectors.shoppingfeed_orders` from the settings: the order API client (bearer
token), the idempotent producer, the cursor and per-order outcomes in Redis (so a restart
goes on from where it was), and `/metrics`, `/healthz` on `--port` (default 9103).
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stockguard.config.settings import Settings
from stockguard.connectors.delivery.http import VendorHttp
from stockguard.connectors.gateway.publisher import KafkaPublisher
from stockguard.connectors.shoppingfeed_orders import OrderPoller, PollFailed, RedisOrderStore
from stockguard.observability import setup_logging

__all__ = ["DEFAULT_PORT", "run_poller"]

log = logging.getLogger("stockguard.poll")

DEFAULT_PORT = 9103


async def _serve(settings: Settings, port: int, once: bool) -> int:
    s = settings.shoppingfeed
    if not s.store_id:
        raise ValueError("shoppingfeed.store_id is not set: STOCKGUARD_SHOPPINGFEED__STORE_ID")
    d = settings.delivery
    headers = {"Accept": "application/json", "Authorization": f"Bearer {s.token.get_secret_value()}"}
    http = VendorHttp(s.api_base, headers, d.timeout / 1000, d.connect_timeout / 1000, 4)
    publisher = KafkaPublisher(settings.kafka.client_config(), settings.gateway.produce_timeout)
    r = settings.redis
    # An order's outcome must outlive every poll whose lookback can bring the order back.
    store = RedisOrderStore(r.url.get_secret_value(), r.prefix, s.store_id, 2 * s.poll_lookback + 24 * 3_600_000)
    poller = OrderPoller(settings, http, publisher, store)

    async def metrics(_r: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "polls": poller.polls})

    runner = web.AppRunner(web.Application(), access_log=None)
    runner.app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz)])
    await runner.setup()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, poller.stop)
    try:
        if once:
            try:
                tally = await poller.poll_once()
            except PollFailed as exc:
                log.error("the Shoppingfeed poll failed", extra={"sg_reason": str(exc)})
                return 1
            log.info("polled Shoppingfeed orders once", extra={"sg_outcomes": dict(tally)})
            return 0
        await web.TCPSite(runner, d.host, port).start()
        log.info("Shoppingfeed order poller started", extra={"sg_store": s.store_id})
        await poller.run()
        return 0
    finally:
        left = publisher.close(10.0)
        await http.close()
        await store.close()
        await runner.cleanup()
        log.info("Shoppingfeed order poller stopped", extra={"sg_outcomes": dict(poller.outcomes), "sg_unsent": left})


def run_poller(settings: Settings, system: str, port: int | None = None, once: bool = False) -> int:
    """Poll until SIGTERM/SIGINT (or once)."""
    if system != "shoppingfeed":
        raise ValueError(f"no poller for {system!r}: shoppingfeed")
    setup_logging(settings.log_format, settings.log_level)
    return uvloop.run(_serve(settings, port if port is not None else DEFAULT_PORT, once))
