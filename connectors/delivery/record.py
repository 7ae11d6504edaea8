"""What a deliverer has sent, kept across restarts: its delivered-ids record.

Braze has no idempotency key, so a trigger redelivered after a crash must be recognised
by us. Per system and trigger, `{redis.prefix}:delivered:{system}:{trigger_id}` holds:

- `pending:{run}`: a send is in flight in run `run`. Claimed (SET NX) just before the
  request, so two runs never both send it. Found by a later run, the send is *in doubt*:
  the crash came between the request and the record of its answer. It is not sent again
  (the contract: never twice) and goes to the delivery DLQ for an operator to check.
- `sent`: the vendor accepted it; a redelivery sends nothing.
- `failed`: the vendor refused it (delivery DLQ); a retraction of it is not sent.

Every deliverer records accepted approvals, so a retraction read before its approval
(they are on two topics) waits until the approval was delivered. Keys expire after
`delivery.record_ttl` (Kafka's retention: no redelivery is older).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import redis.asyncio as aioredis

__all__ = ["Claim", "MemoryRecord", "RedisRecord", "SentRecord"]

Claim = Literal["new", "sent", "failed", "in_doubt", "mine"]
State = Literal["sent", "failed"]


class SentRecord(Protocol):
    """The delivered-ids record of one system."""

    async def claim(self, ids: Sequence[str], run: str) -> list[Claim]:
        """Claim each id for a send in `run`; say for each what it was."""
        ...

    async def states(self, ids: Sequence[str]) -> list[str | None]:
        """Return each id's state: sent, failed, pending, or None (unknown)."""
        ...

    async def mark(self, ids: Sequence[str], state: State) -> None:
        """Record the outcome of a send."""
        ...

    async def release(self, ids: Sequence[str]) -> None:
        """Drop claims whose send surely did not happen (the vendor refused or was unreachable)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _claim_of(previous: str | None, run: str) -> Claim:
    if previous is None:
        return "new"
    if previous == f"pending:{run}":
        return "mine"
    if previous.startswith("pending:"):
        return "in_doubt"
    return "failed" if previous == "failed" else "sent"


class MemoryRecord:
    """The record in this process only (tests, the broker-less demo)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def claim(self, ids: Sequence[str], run: str) -> list[Claim]:
        """Claim each id (first writer wins)."""
        out = []
        for i in ids:
            prev = self.data.get(i)
            if prev is None:
                self.data[i] = f"pending:{run}"
            out.append(_claim_of(prev, run))
        return out

    async def states(self, ids: Sequence[str]) -> list[str | None]:
        """Return each id's state."""
        return [_state(self.data.get(i)) for i in ids]

    async def mark(self, ids: Sequence[str], state: State) -> None:
        """Record the outcome."""
        for i in ids:
            self.data[i] = state

    async def release(self, ids: Sequence[str]) -> None:
        """Drop the claims."""
        for i in ids:
            if (self.data.get(i) or "").startswith("pending:"):
                del self.data[i]

    async def close(self) -> None:
        """Nothing to release."""


def _state(raw: str | None) -> str | None:
    if raw is None:
        return None
    return "pending" if raw.startswith("pending:") else raw


class RedisRecord:
    """The record in Redis, one pipeline per batch."""

    def __init__(self, url: str, prefix: str, system: str, ttl_ms: int) -> None:
        self._r: aioredis.Redis[bytes] = aioredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self._prefix = f"{prefix}:delivered:{system}:"
        self._ttl = ttl_ms

    async def claim(self, ids: Sequence[str], run: str) -> list[Claim]:
        """SET NX each id as pending for `run`, and read what was there."""
        async with self._r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.set(self._prefix + i, f"pending:{run}", nx=True, px=self._ttl, get=True)
            raw = await pipe.execute()
        return [_claim_of(v.decode() if v is not None else None, run) for v in raw]

    async def states(self, ids: Sequence[str]) -> list[str | None]:
        """MGET the ids' states."""
        if not ids:
            return []
        raw = await self._r.mget([self._prefix + i for i in ids])
        return [_state(v.decode() if v is not None else None) for v in raw]

    async def mark(self, ids: Sequence[str], state: State) -> None:
        """SET each id's outcome, with the record's TTL."""
        if not ids:
            return
        async with self._r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.set(self._prefix + i, state, px=self._ttl)
            await pipe.execute()

    async def release(self, ids: Sequence[str]) -> None:
        """DEL the claims (only this run's pending ones are ever released)."""
        if ids:
            await self._r.delete(*[self._prefix + i for i in ids])

    async def close(self) -> None:
        """Close the connections."""
        await self._r.aclose()  # type: ignore[attr-defined]
