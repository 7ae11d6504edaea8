"""A thin async HTTP client for a vendor: one aiohttp session, connections reused.

aiohttp rather than httpx: the gateway already serves on aiohttp, so one HTTP stack
covers both directions, and its client reuses keep-alive connections with a bounded
pool. Timeouts and resets come back as `Transient` so the deliverer retries them; every
HTTP answer, 4xx and 5xx included, comes back as a `Reply` for the deliverer to judge.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple, Protocol

import aiohttp
import orjson

__all__ = ["Http", "Reply", "Transient", "VendorHttp"]


class Reply(NamedTuple):
    """A vendor's answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class Transient(Exception):
    """No answer: a timeout, a refused or reset connection (worth retrying)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind  # "refused" (never connected) | "timeout" | "error" (may have arrived)


class Http(Protocol):
    """What a deliverer needs of an HTTP client."""

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Reply:
        """Make one request; raise `Transient` when no answer came."""
        ...


class VendorHttp:
    """Call one vendor's API at `base` with fixed headers (auth included)."""

    def __init__(
        self, base: str, headers: dict[str, str], timeout_s: float, connect_timeout_s: float, concurrency: int
    ) -> None:
        self.base = base.rstrip("/")
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._limit = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers, json_serialize=_dumps
            )
        return self._session

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Reply:
        """Make one request; raise `Transient` when no answer came."""
        session = await self._open()
        data = orjson.dumps(body) if body is not None else None
        try:
            async with session.request(method, self.base + path, data=data, params=params) as resp:
                payload = await resp.read()
                return Reply(resp.status, dict(resp.headers), payload)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            # Never connected: the request surely did not reach the vendor.
            raise Transient("refused") from None
        except TimeoutError:
            raise Transient("timeout") from None
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError):
            raise Transient("error") from None

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
