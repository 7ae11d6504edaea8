"""The gateway's HTTP application: verify, bound, parse, map, dedup, produce, answer.

Every webhook goes through the same steps, in this order:

1. the body, at most `gateway.max_body` bytes (413 beyond, before it is read whole);
2. the sender's signature or token over the raw body (401, counted; nothing of the body
   is logged);
3. content type (JSON) and nesting depth (400), then the JSON parse (400);
4. the pure mapper of the system (`stockguard.state.vendors`): an event type we do not
   use is answered 200 and counted (`ignored`); a payload that cannot be mapped, or maps
   to a message the contract refuses, becomes a dead letter (`topic` `gateway:<system>`)
   and is answered 200, so the sender stops retrying what will never map;
5. the dedup key (INTEGRATIONS.md) is claimed, the records produced, and the answer is
   2xx only once Kafka acknowledged every one of them; 503 with `Retry-After` when it did
   not within `gateway.produce_timeout` (the records may still arrive: the key stays
   claimed until librdkafka knows, so a retry waits for that outcome rather than
   producing again). A retry of an acknowledged webhook maps to nothing new (200,
   `duplicate`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stockguard.config.settings import Settings
from stockguard.connectors.gateway.publisher import NotTaken, Publisher, Record
from stockguard.connectors.gateway.store import Store
from stockguard.connectors.gateway.stripe_api import Refused, StripeApi, Unavailable
from stockguard.connectors.health import Health
from stockguard.connectors.metrics import GATEWAY_LATENCY, GATEWAY_RECORDS, GATEWAY_REQUESTS
from stockguard.flows.encoding import Encoder, wall_clock_ms
from stockguard.state import sendtime
from stockguard.state.limits import check_input
from stockguard.state.vendors import braze, ga4, klaviyo, shopify, signatures
from stockguard.state.vendors import stripe as stripe_map
from stockguard.state.vendors.common import MappingError, Out, stable_id, validate

__all__ = ["OPENAPI", "SYSTEMS", "Gateway", "build_app"]

log = logging.getLogger("stockguard.gateway")
# At most one "not taken" warning per interval: an outage fails every webhook, and
# stockguard_gateway_requests_total{outcome} counts each of them anyway.
NOT_TAKEN_LOG_INTERVAL_S: Final = 10.0
T = TypeVar("T")

SYSTEMS: Final = ("shopify", "stripe", "klaviyo", "braze", "ga4")
OPENAPI: Final = Path(__file__).with_name("openapi.json")
TOKEN_HEADER: Final = "X-Stockguard-Token"  # noqa: S105 - a header name, not a secret
SHOPIFY_PRODUCTS: Final = ("products/create", "products/update")
_JSON: Final = ("application/json",)
OUTCOME: Final = web.ResponseKey("outcome", str)
# GA4's own examples POST without a content type (fetch sends text/plain).
_GA4_TYPES: Final = ("application/json", "text/plain", "")


@dataclass
class Mapped:
    """What a webhook maps to: its dedup key and records, or why it is dead-lettered."""

    key: str
    outs: list[Out] = field(default_factory=list)
    error: str | None = None


class Answer(Exception):
    """Stop a request with a status, a JSON reason and the outcome to count."""

    def __init__(self, status: int, outcome: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason
        self.headers = headers or {}

    def response(self) -> web.Response:
        """Render the answer."""
        return web.Response(
            body=orjson.dumps({"error": self.reason}),
            status=self.status,
            content_type="application/json",
            headers=self.headers,
        )


class Gateway:
    """The webhook pipeline of one process, over its publisher, store and Stripe client."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        store: Store,
        *,
        stripe_api: StripeApi | None = None,
        kafka: Health | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.s = settings
        self.publisher = publisher
        self.store = store
        self.stripe_api = stripe_api
        self.kafka = kafka
        self.clock_ms = clock_ms
        self.clock_s = clock_s
        self.encoder = Encoder(settings, clock_ms)
        g = settings.gateway
        self.timeout_s = g.produce_timeout / 1000
        self.retry_after = str(max(1, math.ceil(g.retry_after / 1000)))
        # librdkafka may deliver a record until message.timeout.ms: the claim outlives it.
        self.pending_ms = settings.kafka.outage_tolerance + g.produce_timeout + 60_000
        # Per dedup key being delivered: Kafka's verdict, awaited by the request and its retries.
        self.inflight: dict[str, asyncio.Future[bool]] = {}
        self.settling: set[asyncio.Task[None]] = set()
        # Kafka down fails every webhook: one warning per interval, with the count since.
        self._not_taken_next = 0.0
        self._not_taken_since = 0
        self.limits = settings.input
        t = settings.topics
        self.topics = {kind: getattr(t, kind) for kind in ("clickstream", "stock", "orders", "products", "triggers")}

    # ---- the common steps ----

    async def body(self, request: web.Request) -> bytes:
        """Read the body within the size limit (413)."""
        if request.content_length is not None and request.content_length > self.s.gateway.max_body:
            raise Answer(413, "too_large", f"body over gateway.max_body ({self.s.gateway.max_body:,} bytes)")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Answer(413, "too_large", f"body over gateway.max_body ({self.s.gateway.max_body:,} bytes)") from None

    @staticmethod
    def denied(reason: str | None) -> None:
        """Refuse an unverified request (401); the reason names no secret and no body."""
        if reason is not None:
            raise Answer(401, "unauthorized", reason)

    def parse(self, request: web.Request, raw: bytes, types: tuple[str, ...] = _JSON) -> Any:
        """Check the content type and the nesting, then parse the JSON (400)."""
        ctype = request.content_type if request.headers.get("Content-Type") else ""
        if ctype not in types:
            raise Answer(400, "bad_request", f"content type {ctype or 'none'}: expected application/json")
        refused = check_input(raw, self.s.gateway.max_body, self.limits.max_json_depth)
        if refused is not None:
            raise Answer(400, "bad_request", refused.removeprefix("value: "))
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Answer(400, "bad_request", f"not JSON ({exc})") from None

    def records(self, system: str, mapped: Mapped, raw: bytes) -> list[Record]:
        """Encode a mapping's records, or its dead letter."""
        if mapped.error is None:
            try:
                for out in mapped.outs:
                    validate(out)
            except MappingError as exc:
                mapped.error = str(exc)
        if mapped.error is not None:
            dead = self.encoder.dead_letter(f"gateway:{system}", None, None, mapped.key, raw, mapped.error)
            return [(dead.topic, dead.key, dead.value)]
        return [(self.topics[o.kind], o.key, orjson.dumps(o.value)) for o in mapped.outs]

    async def deliver(self, system: str, mapped: Mapped, raw: bytes) -> web.Response:
        """Claim the dedup key, produce, and answer once Kafka acknowledged (or 503)."""
        # Stored hashed: a sender's id may hold a customer id, which never becomes a Redis key.
        key = stable_id("dedup", mapped.key)
        task = self.inflight.get(key)
        first = task is None
        if task is None:
            # The store is down: nothing can be promised.
            claim = await self.stored(self.store.claim(key, self.pending_ms), system, "the dedup store")
            if claim == "done":
                return self.ok("duplicate", 0)
            if claim == "pending":
                raise self.unavailable("an earlier delivery of this webhook is still unconfirmed")
            records = self.records(system, mapped, raw)
            loop = asyncio.get_running_loop()
            fut = self.publisher.publish(loop, records)
            task = self.inflight[key] = loop.create_future()
            settling = asyncio.ensure_future(self._settle(key, fut, task))
            self.settling.add(settling)
            settling.add_done_callback(self.settling.discard)
            n = len(records)
        else:
            n = 0
        try:
            delivered = await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except TimeoutError:
            raise self.unavailable(
                f"Kafka did not acknowledge within gateway.produce_timeout ({self.timeout_s:g} s)"
            ) from None
        if not delivered:
            raise self.unavailable("Kafka did not take the records")
        if not first:
            return self.ok("duplicate", 0)
        if mapped.error is not None:
            log.warning("gateway dead-lettered a webhook", extra={"sg_system": system, "sg_reason": mapped.error})
            return self.ok("dead_lettered", 1)
        for out in mapped.outs:
            GATEWAY_RECORDS.labels(system, out.kind).inc()
        return self.ok("accepted", n)

    def _warn_not_taken(self, error: str) -> None:
        now = time.monotonic()
        if now < self._not_taken_next:
            self._not_taken_since += 1
            return
        self._not_taken_next = now + NOT_TAKEN_LOG_INTERVAL_S
        log.warning(
            "gateway records not taken by Kafka",
            extra={"sg_error": error[:200], "sg_more_since_last": self._not_taken_since},
        )
        self._not_taken_since = 0

    async def _settle(self, key: str, fut: asyncio.Future[None], verdict: asyncio.Future[bool]) -> None:
        """Pass on Kafka's verdict on a key's records, then remember or release the key.

        The answer goes out with the verdict, not after the store's write: until `done` is
        written the key is still claimed, so a retry meanwhile is told to come back (503),
        never produced again.
        """
        try:
            await fut
            ok = True
        except NotTaken as exc:
            self._warn_not_taken(str(exc))
            ok = False
        verdict.set_result(ok)
        try:
            if ok:
                await self.store.done(key, self.s.gateway.dedup_window)
            else:
                await self.store.release(key)
        except Exception as exc:  # the claim's TTL ends it anyway
            log.warning("gateway store unavailable", extra={"sg_error": type(exc).__name__})
        finally:
            self.inflight.pop(key, None)

    def unavailable(self, reason: str) -> Answer:
        """Build the 503 that makes the sender retry."""
        return Answer(503, "unavailable", reason, headers={"Retry-After": self.retry_after})

    @staticmethod
    def ok(outcome: str, records: int) -> web.Response:
        """Build the 200 of a webhook that needs no retry."""
        resp = web.json_response({"status": outcome, "records": records}, dumps=lambda o: orjson.dumps(o).decode())
        resp[OUTCOME] = outcome
        return resp

    @staticmethod
    def ignored() -> web.Response:
        """Answer an event type we do not use."""
        return Gateway.ok("ignored", 0)

    # ---- one handler per system ----

    async def shopify(self, request: web.Request) -> web.Response:
        """Take a Shopify webhook: orders, inventory levels, products."""
        raw = await self.body(request)
        self.denied(
            signatures.shopify(
                raw, request.headers.get("X-Shopify-Hmac-Sha256"), self.s.shopify.webhook_secret.get_secret_value()
            )
        )
        body = self.parse(request, raw)
        topic = request.headers.get("X-Shopify-Topic", "")
        event = (
            request.headers.get("X-Shopify-Event-Id")
            or request.headers.get("X-Shopify-Webhook-Id")
            or stable_id("body", topic, raw)
        )
        mapped = Mapped(f"shopify:{event}")
        cfg = self.s.shopify
        try:
            if topic in shopify.ORDER_TOPICS:
                mapped.outs = [shopify.order(body, topic, cfg.locations, event)]
            elif topic == "inventory_levels/update":
                item = str(body.get("inventory_item_id")) if isinstance(body, dict) else ""
                known = await self.stored(self.store.skus_of([item]), "shopify", "the sku map store") if item else {}
                mapped.outs = [shopify.inventory_level(body, known, cfg.locations, event)]
            elif topic in SHOPIFY_PRODUCTS:
                mapped.outs = shopify.products(body, cfg.size_option)
                # Learned before the answer: a level that follows finds its sku.
                await self.stored(self.store.learn_skus(shopify.inventory_items(body)), "shopify", "the sku map store")
            else:
                return self.ignored()
        except MappingError as exc:
            mapped.error = f"{topic}: {exc}"
        return await self.deliver("shopify", mapped, raw)

    async def stored(self, op: Awaitable[T], system: str, what: str) -> T:
        """Await a Redis call; a store that does not answer is a 503, so the sender retries."""
        try:
            return await op
        except Exception as exc:
            log.warning("gateway store unavailable", extra={"sg_system": system, "sg_error": type(exc).__name__})
            raise self.unavailable(f"{what} does not answer") from None

    async def stripe(self, request: web.Request) -> web.Response:
        """Take a Stripe event: checkout sessions completed (orders) and expired (triggers)."""
        raw = await self.body(request)
        cfg = self.s.stripe
        self.denied(
            signatures.stripe(
                raw,
                request.headers.get("Stripe-Signature"),
                cfg.webhook_secret.get_secret_value(),
                self.clock_s(),
                cfg.tolerance / 1000,
            )
        )
        body = self.parse(request, raw)
        try:
            eid, etype, session = stripe_map.event_session(body)
        except MappingError as exc:
            return await self.deliver("stripe", Mapped(stable_id("stripe-body", raw), error=str(exc)), raw)
        mapped = Mapped(f"stripe:{eid}")
        if not stripe_map.needs_line_items(etype, session):
            return self.ignored()
        try:
            lines = stripe_map.line_items(await self.line_items(session))
            if etype == stripe_map.COMPLETED:
                mapped.outs = [stripe_map.checkout_order(eid, session, lines)]
            else:
                trigger = stripe_map.abandoned_cart(session, lines, cfg.abandonment_campaign)
                mapped.outs = [trigger] if trigger is not None else []
        except MappingError as exc:
            mapped.error = f"{etype}: {exc}"
        return await self.deliver("stripe", mapped, raw)

    async def line_items(self, session: dict[str, Any]) -> Any:
        """Fetch a session's line items from Stripe (503 when Stripe does not answer)."""
        if self.stripe_api is None:
            raise MappingError("stripe.api_key is not set: line items cannot be fetched")
        sid = session.get("id")
        if not isinstance(sid, str) or not sid:
            raise MappingError("data.object.id: missing")
        try:
            return await self.stripe_api.line_items(sid)
        except Unavailable as exc:
            raise self.unavailable(f"fetching line items: {exc}") from None
        except Refused as exc:
            raise MappingError(f"fetching line items: {exc}") from None

    async def flow_webhook(self, request: web.Request, system: str) -> web.Response:
        """Take a Klaviyo or Braze webhook rendered from our template."""
        raw = await self.body(request)
        cfg = self.s.klaviyo if system == "klaviyo" else self.s.braze
        self.denied(
            signatures.token(
                request.headers.get(TOKEN_HEADER),
                cfg.webhook_token.get_secret_value(),
                f"{system}.webhook_token",
                TOKEN_HEADER,
            )
        )
        body = self.parse(request, raw)
        mapper = klaviyo.trigger if system == "klaviyo" else braze.trigger
        try:
            out = mapper(body, self.clock_ms(), cfg.consent_default)
        except MappingError as exc:
            return await self.deliver(system, Mapped(stable_id(f"{system}-body", raw), error=str(exc)), raw)
        return await self.deliver(system, Mapped(f"{system}:{out.value['trigger_id']}", [out]), raw)

    async def klaviyo(self, request: web.Request) -> web.Response:
        """Take a Klaviyo flow webhook."""
        return await self.flow_webhook(request, "klaviyo")

    async def braze(self, request: web.Request) -> web.Response:
        """Take a Braze webhook."""
        return await self.flow_webhook(request, "braze")

    async def ga4(self, request: web.Request) -> web.Response:
        """Take a GA4 Measurement Protocol request."""
        raw = await self.body(request)
        self.denied(
            signatures.token(
                request.query.get("api_secret"),
                self.s.ga4.api_secret.get_secret_value(),
                "ga4.api_secret",
                "api_secret",
            )
        )
        body = self.parse(request, raw, _GA4_TYPES)
        try:
            mapped_ga4 = ga4.collect(body, self.clock_ms(), self.s.ga4.sku_field)
        except MappingError as exc:
            return await self.deliver("ga4", Mapped(stable_id("ga4-body", raw), error=str(exc)), raw)
        if not mapped_ga4.outs:
            return self.ignored()
        # The synthesized event ids name the request: a retried one has the same.
        ids = sorted(str(o.value.get("event_id")) for o in mapped_ga4.outs)
        return await self.deliver("ga4", Mapped(stable_id("ga4", *ids), mapped_ga4.outs), raw)

    # ---- the send-time check ----

    async def check_token(self, request: web.Request) -> None:
        """Refuse a send-time check without `gateway.api_token` (401)."""
        self.denied(
            signatures.token(
                request.headers.get(TOKEN_HEADER),
                self.s.gateway.api_token.get_secret_value(),
                "gateway.api_token",
                TOKEN_HEADER,
            )
        )

    async def trigger_check(self, request: web.Request) -> web.Response:
        """Answer whether a trigger's send still stands: send, retarget, suppress, retracted, unknown."""
        await self.check_token(request)
        tid = request.match_info["trigger_id"]
        fields = await self.stored(self.store.decision(tid), "check", "the read model")
        answer = sendtime.answer_of(tid, fields) if fields else sendtime.unknown(tid)
        resp = web.Response(body=orjson.dumps(answer), content_type="application/json")
        resp[OUTCOME] = answer["decision"]
        return resp

    async def sku_check(self, request: web.Request) -> web.Response:
        """Answer the read model's row of a sku (404 when it has none)."""
        await self.check_token(request)
        sku = request.match_info["sku"]
        fields = await self.stored(self.store.sku(sku), "check", "the read model")
        if not fields:
            raise Answer(404, "unknown_sku", f"no read-model row for sku {sku[:64]!r}")
        resp = web.Response(body=orjson.dumps(sendtime.sku_row(sku, fields)), content_type="application/json")
        resp[OUTCOME] = "found"
        return resp

    # ---- operations ----

    async def healthz(self, _request: web.Request) -> web.Response:
        """Answer liveness: the event loop runs."""
        return web.json_response({"live": True})

    async def readyz(self, _request: web.Request) -> web.Response:
        """Answer readiness: Kafka reachable and the store answering."""
        kafka = self.kafka.kafka_reachable if self.kafka is not None else True
        store = await self.store.ping()
        ok = kafka and store
        return web.json_response({"ready": ok, "kafka_reachable": kafka, "store": store}, status=200 if ok else 503)

    async def metrics(self, _request: web.Request) -> web.Response:
        """Serve the Prometheus metrics of this process."""
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, _request: web.Request) -> web.Response:
        """Serve the OpenAPI document of these endpoints."""
        return web.Response(body=OPENAPI.read_bytes(), content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _system_of(path: str) -> str:
    if path.startswith("/v1/"):
        return "check"
    for system in SYSTEMS:
        if system in path:
            return system
    return "other"


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time and count every webhook by system and outcome; turn failures into JSON."""
    started = time.perf_counter()
    system = _system_of(request.path)
    try:
        resp = await handler(request)
        outcome = resp.get(OUTCOME, "ok") if isinstance(resp, web.Response) else "ok"
    except Answer as ans:
        resp, outcome = ans.response(), ans.outcome
    except web.HTTPException as exc:  # aiohttp's own: 404, 405
        resp, outcome = exc, f"http_{exc.status}"
    except Exception as exc:  # a bug must not take the process down; no body in the log
        log.exception("gateway failed on a request", extra={"sg_system": system, "sg_error": type(exc).__name__})
        resp = web.json_response({"error": "internal error"}, status=500)
        outcome = "error"
    if system != "other":
        GATEWAY_REQUESTS.labels(system, outcome).inc()
        GATEWAY_LATENCY.labels(system).observe(time.perf_counter() - started)
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def build_app(gateway: Gateway) -> web.Application:
    """Build the aiohttp application of a gateway."""
    # client_max_size makes aiohttp refuse a larger body while reading it (413).
    app = web.Application(middlewares=[_count], client_max_size=gateway.s.gateway.max_body)
    app.router.add_post("/webhooks/shopify", gateway.shopify)
    app.router.add_post("/webhooks/stripe", gateway.stripe)
    app.router.add_post("/webhooks/klaviyo", gateway.klaviyo)
    app.router.add_post("/webhooks/braze", gateway.braze)
    app.router.add_post("/ga4/mp/collect", gateway.ga4)
    app.router.add_get("/v1/triggers/{trigger_id}", gateway.trigger_check)
    app.router.add_get("/v1/skus/{sku}", gateway.sku_check)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/metrics", gateway.metrics)
    app.router.add_get("/openapi.json", gateway.openapi)
    for system in SYSTEMS:
        for outcome in ("accepted", "duplicate", "ignored", "dead_lettered", "unauthorized", "unavailable"):
            GATEWAY_REQUESTS.labels(system, outcome)
    return app
