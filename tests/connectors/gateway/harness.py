"""A gateway in a test: a fake publisher, an in-memory store, signed requests."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stockguard.config.settings import SecretStr, Settings
from stockguard.connectors.gateway.app import Gateway, build_app
from stockguard.connectors.gateway.publisher import NotTaken, Record
from stockguard.connectors.gateway.store import MemoryStore
from stockguard.connectors.gateway.stripe_api import StripeApi

T = TypeVar("T")
NOW_S = 1_764_547_200.0
SHOPIFY_SECRET = "shpss_test"
STRIPE_SECRET = "whsec_test"
TOKEN = "tok_test"


def settings(**sections: Any) -> Settings:
    """Return settings with every secret set (and the given section fields replaced)."""
    s = Settings()
    s = dataclasses.replace(
        s,
        gateway=dataclasses.replace(s.gateway, state="memory", produce_timeout=300),
        shopify=dataclasses.replace(
            s.shopify, webhook_secret=SecretStr(SHOPIFY_SECRET), locations={"905684977": "WH-PARIS"}
        ),
        stripe=dataclasses.replace(s.stripe, webhook_secret=SecretStr(STRIPE_SECRET), api_key=SecretStr("sk_test")),
        klaviyo=dataclasses.replace(s.klaviyo, webhook_token=SecretStr(TOKEN)),
        braze=dataclasses.replace(s.braze, webhook_token=SecretStr(TOKEN)),
        ga4=dataclasses.replace(s.ga4, api_secret=SecretStr(TOKEN)),
    )
    for name, fields in sections.items():
        s = dataclasses.replace(s, **{name: dataclasses.replace(getattr(s, name), **fields)})
    return s


class FakePublisher:
    """Record what is published; acknowledge at once, fail, or hold until released."""

    def __init__(self) -> None:
        self.mode = "ack"
        self.published: list[Record] = []
        self.held: list[tuple[asyncio.Future[None], Sequence[Record]]] = []

    def publish(self, loop: asyncio.AbstractEventLoop, records: Sequence[Record]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = loop.create_future()
        if self.mode == "ack":
            self.published.extend(records)
            fut.set_result(None)
        elif self.mode == "fail":
            fut.set_exception(NotTaken("broker down"))
        else:
            self.held.append((fut, records))
        return fut

    def release(self, ok: bool = True) -> None:
        """Settle the held batches: delivered late, or failed."""
        for fut, records in self.held:
            if ok:
                self.published.extend(records)
                fut.set_result(None)
            else:
                fut.set_exception(NotTaken("message timed out"))
        self.held.clear()

    def close(self, timeout_s: float) -> int:
        return 0

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _k, v in self.published if t == topic]


def shopify_headers(body: bytes, topic: str, event_id: str, secret: str = SHOPIFY_SECRET) -> dict[str, str]:
    mac = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": mac,
        "X-Shopify-Event-Id": event_id,
    }


def stripe_headers(body: bytes, t: int = int(NOW_S), secret: str = STRIPE_SECRET) -> dict[str, str]:
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={v1}"}


def token_headers(token: str = TOKEN) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Stockguard-Token": token}


class Harness:
    """A running gateway and a client for it, inside one event loop."""

    def __init__(self, s: Settings | None = None, stripe_base: str | None = None) -> None:
        self.settings = s or settings()
        self.publisher = FakePublisher()
        self.store = MemoryStore()
        self.gateway = Gateway(
            self.settings, self.publisher, self.store, clock_ms=lambda: int(NOW_S * 1000), clock_s=lambda: NOW_S
        )
        self.stripe_base = stripe_base
        self.client: TestClient[web.Request, web.Application] | None = None

    async def __aenter__(self) -> Harness:
        self.client = TestClient(TestServer(build_app(self.gateway)))
        await self.client.start_server()
        if self.stripe_base is not None:
            s = self.settings.stripe
            self.gateway.stripe_api = StripeApi(self.client.session, self.stripe_base, "sk_test", s.api_timeout / 1000)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.client is not None
        await self.client.close()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], Any]:
        assert self.client is not None
        async with self.client.post(path, data=body, headers=headers) as resp:
            text = await resp.read()
            return resp.status, dict(resp.headers), orjson.loads(text) if text else None

    async def get_json(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        assert self.client is not None
        async with self.client.get(path, headers=headers) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def get(self, path: str) -> tuple[int, bytes]:
        assert self.client is not None
        async with self.client.get(path) as resp:
            return resp.status, await resp.read()


def run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async test body in a fresh event loop."""
    return asyncio.run(coro())
