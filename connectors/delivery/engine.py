"""One deliverer: read decisions and stock views, make the vendor's calls, commit after.

For each batch taken from Kafka:

1. approvals first: a recorded system (Braze) skips the ids it already sent and sends the
   rest; every accepted approval is recorded `sent`, so retractions can find it;
2. then retractions whose approval is recorded; the others wait (up to
   `delivery.retraction_hold`, then go anyway: a retraction of nothing is harmless);
3. stock views are coalesced and pushed at most once per the vendor's `stock_interval`,
   in a task of their own so a slow catalog never delays a send;
4. the offsets of what was handled (accepted, dead-lettered, or needing nothing) are
   committed. A crash re-reads the rest; `unique_id` (Klaviyo) or our record (Braze)
   makes the repeat harmless.

Each call waits for its endpoint's token bucket and the circuit, and is retried on 429
(the vendor's wait), 5xx and no answer (backoff with jitter) until accepted; a 4xx that
no retry can fix goes to the delivery DLQ with the vendor's status and body. Braze has
no idempotency key, so an approval whose answer never came (timeout, reset) is not sent
again: it goes to the delivery DLQ as in doubt. A stop (SIGTERM) starts no new request but
lets those in flight finish and records their answers, so only a crash leaves a send in
doubt. When a rebalance makes two runs claim the same Braze trigger, the one that finds it
claimed waits for the other's outcome (a duplicate, not a second send) and sends the rest.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from stockguard.config.settings import Settings
from stockguard.connectors.delivery.http import Http, Reply, Transient
from stockguard.connectors.delivery.kafka_io import DlqOut, Incoming, Source
from stockguard.connectors.delivery.metrics import (
    CIRCUIT_OPEN,
    DELIVERED,
    DELIVERY_LAG,
    DELIVERY_LATENCY,
    OUTCOMES,
    REQUEST_LATENCY,
    REQUESTS,
)
from stockguard.connectors.delivery.record import Claim, SentRecord
from stockguard.state.delivery.offsets import OffsetTracker
from stockguard.state.delivery.pacing import Backoff, Circuit, TokenBucket, reset_wait, retry_after
from stockguard.state.delivery.plan import Call, Msg, Planner
from stockguard.state.delivery.stock import Position, StockPush, StockSync

__all__ = ["Deliverer", "buckets_for", "topics_for"]

log = logging.getLogger(__name__)

_EMAIL = re.compile(rb"[^\s\"'<>@,;:]+@[^\s\"'<>@,;:]+\.[A-Za-z]{2,}")
_BODY_KEPT = 2048


def buckets_for(settings: Settings, system: str) -> dict[str, TokenBucket]:
    """Return the token bucket of each endpoint of `system`, from the settings."""
    if system == "klaviyo":
        k = settings.klaviyo
        return {
            "events": TokenBucket(k.events_rate, k.events_burst),
            "catalog": TokenBucket(k.catalog_rate, k.catalog_burst),
        }
    if system == "braze":
        b = settings.braze
        return {
            "send": TokenBucket(b.send_rate, b.send_burst),
            "track": TokenBucket(b.track_rate, b.track_burst),
            "catalog": TokenBucket(b.catalog_rate, b.catalog_burst),
        }
    s = settings.shoppingfeed
    return {"inventory": TokenBucket(s.inventory_rate, s.inventory_burst)}


def topics_for(settings: Settings, planner: Planner) -> dict[str, str]:
    """Return the topics a deliverer reads, each with the kind of message it holds."""
    t = settings.topics
    kinds = {t.stock_views: "stock"}
    if planner.decisions:
        kinds |= {t.approved: "approved", t.retracted: "retracted"}
    return kinds


def _stock_interval(settings: Settings, system: str) -> float:
    ms = {
        "klaviyo": settings.klaviyo.stock_interval,
        "braze": settings.braze.stock_interval,
        "shoppingfeed": settings.shoppingfeed.stock_interval,
    }[system]
    return ms / 1000


class _Result:
    __slots__ = ("conflict", "doubt", "reply", "stopped")

    def __init__(
        self,
        reply: Reply | None,
        doubt: bool = False,
        stopped: bool = False,
        conflict: Sequence[Claim] | None = None,
    ) -> None:
        self.reply = reply
        self.doubt = doubt
        # Not attempted because the deliverer is stopping: left uncommitted, redelivered.
        self.stopped = stopped
        # Another run holds or settled some of the call's triggers (a rebalance raced us):
        # the claims as found, aligned with the call's trigger ids; nothing was sent.
        self.conflict = conflict

    @property
    def accepted(self) -> bool:
        return self.reply is not None and 200 <= self.reply.status < 300


class _Stopped(Exception):
    pass


class Deliverer:
    """Deliver one system's decisions and stock from Kafka to its API."""

    def __init__(
        self,
        settings: Settings,
        planner: Planner,
        http: Http,
        record: SentRecord,
        source: Source,
        dlq: DlqOut,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
    ) -> None:
        d = settings.delivery
        self.system = planner.system
        self.planner = planner
        self.http = http
        self.record = record
        self.source = source
        self.dlq = dlq
        self.clock = clock
        self.wall = wall
        self.batch = d.batch
        self.kinds = topics_for(settings, planner)
        self.topics = list(self.kinds)
        self.run_id = uuid.uuid4().hex[:12]
        self.tracker = OffsetTracker()
        self.sync = StockSync(_stock_interval(settings, self.system))
        self.buckets = buckets_for(settings, self.system)
        self.backoff = Backoff(chance, d.backoff_base / 1000, d.backoff_cap / 1000)
        self.circuit = Circuit(d.circuit_threshold, d.circuit_cooldown / 1000)
        self.hold_s = d.retraction_hold / 1000
        self.timeout_s = d.timeout / 1000
        self.sem = asyncio.Semaphore(d.concurrency)
        # Retractions whose approval is not delivered yet, with when they were first seen.
        self.held: list[tuple[Msg, float]] = []
        self.born: dict[Position, int] = {}
        self.stock_task: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.outcomes: Tally[str] = Tally()
        self.ready = False
        self.lag_every = 5.0
        # Every series at 0 from the start, so that the alert rules' increase() and rate()
        # see a deliverer's first dead letter, and the dashboard shows a closed circuit.
        for outcome in OUTCOMES:
            DELIVERED.labels(self.system, outcome)
        CIRCUIT_OPEN.labels(self.system).set(0)

    # ---- the loop ----

    async def run(self) -> None:
        """Deliver until `stop()`; then finish what is in flight and commit it."""
        self.stopping.clear()
        lag_task = asyncio.create_task(self._report_lag())
        try:
            while not self.stopping.is_set():
                idle = not self.held and self.sync.wait(self.clock()) == 0 and not self.sync.positions
                incoming = await self.source.poll(self.batch, 0.05 if idle else 0.005)
                self.ready = True
                lost = self.source.revoked()
                if lost:
                    self.tracker.forget(lost)
                await self._handle(incoming)
                self._maybe_push_stock()
                await self._commit(wait=False)
        except _Stopped:
            pass
        finally:
            lag_task.cancel()
            if self.stock_task is not None:
                self.stock_task.cancel()
            await self._commit()

    def stop(self) -> None:
        """Ask the loop to stop after the current batch."""
        self.stopping.set()

    async def _report_lag(self) -> None:
        """Set the lag gauge every `lag_every` seconds, in a task of its own.

        A loop held up by Redis or the delivery DLQ (`_retrying`) still shows its backlog
        growing, which is what the alert rules watch.
        """
        while not self.stopping.is_set():
            lag: dict[str, int] = {}
            try:
                lag = await self.source.lag()
            except Exception as exc:  # the consumer closing under us, a broker hiccup: next time
                log.debug("%s: lag not read: %s", self.system, exc)
            for topic, n in lag.items():
                DELIVERY_LAG.labels(self.system, topic).set(n)
            try:
                # Soon again while no partition is assigned yet (nothing to report).
                await asyncio.wait_for(self.stopping.wait(), self.lag_every if lag else min(self.lag_every, 0.5))
            except TimeoutError:
                pass

    async def _commit(self, wait: bool = True) -> None:
        offsets = self.tracker.committable()
        if offsets:
            await self.source.commit(offsets, wait)
            self.tracker.committed(offsets)

    def _settle(self, positions: Sequence[Position], outcome: str | None = None) -> None:
        for topic, partition, offset in positions:
            self.tracker.done((topic, partition), offset)
            self.born.pop((topic, partition, offset), None)
        if outcome is not None and positions:
            self.outcomes[outcome] += len(positions)
            DELIVERED.labels(self.system, outcome).inc(len(positions))

    # ---- one batch ----

    async def _handle(self, incoming: list[Incoming]) -> None:
        approvals: list[Msg] = []
        retractions: list[Msg] = []
        bad: list[tuple[Incoming, str, str]] = []
        for m in incoming:
            pos = (m.topic, m.partition, m.offset)
            self.tracker.take((m.topic, m.partition), m.offset)
            kind = self.kinds.get(m.topic)
            if kind is None:
                self._settle([pos])
                continue
            try:
                value = orjson.loads(m.value or b"")
            except orjson.JSONDecodeError:
                bad.append((m, kind, "not JSON"))
                continue
            if not isinstance(value, dict):
                bad.append((m, kind, "not a JSON object"))
                continue
            if kind == "stock":
                sku, atp = value.get("sku"), value.get("atp")
                if not isinstance(sku, str) or not isinstance(atp, int) or isinstance(atp, bool):
                    bad.append((m, kind, "a stock view needs sku (text) and atp (integer)"))
                    continue
                self.sync.add(sku, atp, pos)
                continue
            if m.timestamp_ms is not None:
                self.born[pos] = m.timestamp_ms
            (approvals if kind == "approved" else retractions).append(Msg(kind, value, pos))
        if bad:
            await self._dead_letter_raw(bad)
        if approvals:
            await self._approvals(approvals)
        if retractions or self.held:
            await self._retractions(retractions)

    async def _approvals(self, msgs: list[Msg]) -> None:
        if self.planner.recorded:
            # Drop what an earlier run sent, refused or left in doubt; the rest is claimed
            # call by call just before its request (`_send`), so the window in which a
            # crash leaves a send in doubt is one request, not a batch.
            ids = [str(m.value.get("trigger_id")) for m in msgs]
            states = await self._retrying(lambda: self.record.states(ids))
            fresh: list[Msg] = []
            doubtful: list[Msg] = []
            for m, state in zip(msgs, states, strict=True):
                if state is None:
                    fresh.append(m)
                elif state == "pending":
                    doubtful.append(m)
                else:
                    self._settle([m.position], "duplicate")
            if doubtful:
                why = "a deliverer stopped while this send was in flight"
                await self._dead_letter(doubtful, "in_doubt", None, why)
            msgs = fresh
        calls, unsendable = self.planner.approvals(msgs)
        for m, why in unsendable:
            await self._dead_letter([m], "unsendable", None, why)
        if self.planner.recorded and unsendable:
            await self._retrying(
                lambda: self.record.mark([str(m.value.get("trigger_id")) for m, _ in unsendable], "failed")
            )
        await self._calls(calls, {m.position: m for m in msgs})

    async def _retractions(self, fresh: list[Msg]) -> None:
        now = self.clock()
        waiting = self.held + [(m, now) for m in fresh]
        ids = [str(m.value.get("trigger_id")) for m, _ in waiting]
        states = await self._retrying(lambda: self.record.states(ids))
        ready: list[Msg] = []
        held: list[tuple[Msg, float]] = []
        for (m, seen), state in zip(waiting, states, strict=True):
            if state == "sent" or now - seen >= self.hold_s:
                ready.append(m)
            elif state == "failed":
                self._settle([m.position], "skipped")
            else:
                held.append((m, seen))
        self.held = held
        if not ready:
            return
        calls, unsendable = self.planner.retractions(ready)
        for m, why in unsendable:
            await self._dead_letter([m], "unsendable", None, why)
        await self._calls(calls, {m.position: m for m in ready})

    async def _calls(self, calls: list[Call], by_pos: dict[Position, Msg]) -> None:
        # Every call runs to its end, a stop included: `_send` does not start a request
        # once stopping, but one in flight is answered and recorded, so a graceful stop
        # leaves no Braze send in doubt.
        results = await asyncio.gather(*(self._send(c) for c in calls))
        sent: list[str] = []
        failed: list[str] = []
        again: list[Msg] = []
        for call, res in zip(calls, results, strict=True):
            msgs = [by_pos[p] for p in call.positions]
            if res.stopped:
                continue
            if res.conflict is not None:
                again += await self._contended(msgs, res.conflict)
                continue
            if res.accepted:
                if call.kind == "approved":
                    sent.extend(call.trigger_ids)
                now_ms = self.wall() * 1000
                for p in call.positions:
                    born = self.born.get(p)
                    if born is not None:
                        DELIVERY_LATENCY.labels(self.system).observe(max(0.0, now_ms - born) / 1000)
                self._settle(call.positions, "delivered")
            elif res.doubt:
                await self._dead_letter(msgs, "in_doubt", None, "no answer from the vendor; not sent again")
            else:
                if call.kind == "approved":
                    failed.extend(call.trigger_ids)
                await self._dead_letter(msgs, "rejected", res.reply, "the vendor refused it")
        if sent:
            await self._retrying(lambda: self.record.mark(sent, "sent"))
        if failed:
            await self._retrying(lambda: self.record.mark(failed, "failed"))
        if again and not self.stopping.is_set():
            retry, _unsendable = self.planner.approvals(again)  # sendable before: still so
            await self._calls(retry, {m.position: m for m in again})

    async def _contended(self, msgs: list[Msg], claims: Sequence[Claim]) -> list[Msg]:
        """Settle the triggers another run holds or settled; return those still ours to send.

        A rebalance can hand a partition over while its old owner still sends: the new
        owner then finds some claims held by the other run. Sent ones are duplicates,
        refused ones skipped; one still pending is waited for (its owner is alive and
        finishing, or died and left it in doubt) up to the HTTP timeout and a margin.
        """
        mine: list[Msg] = []
        held: list[Msg] = []
        for m, claim in zip(msgs, claims, strict=True):
            if claim == "sent":
                self._settle([m.position], "duplicate")
            elif claim == "failed":
                self._settle([m.position], "skipped")
            elif claim == "in_doubt":
                held.append(m)
            else:
                mine.append(m)
        deadline = self.clock() + self.timeout_s + 5.0
        while held:
            ids = [str(m.value.get("trigger_id")) for m in held]
            states = await self._retrying(lambda ids=ids: self.record.states(ids))  # type: ignore[misc]
            still: list[Msg] = []
            for m, state in zip(held, states, strict=True):
                if state == "sent":
                    self._settle([m.position], "duplicate")
                elif state == "failed":
                    self._settle([m.position], "skipped")
                elif state is None:
                    mine.append(m)  # its owner released it: surely not sent
                else:
                    still.append(m)
            held = still
            if held and self.clock() >= deadline:
                why = "another deliverer run held this send and never recorded its answer"
                await self._dead_letter(held, "in_doubt", None, why)
                break
            if held:
                await self._sleep(0.2)
        return mine

    # ---- stock ----

    def _maybe_push_stock(self) -> None:
        if self.stock_task is not None and not self.stock_task.done():
            return
        push = self.sync.due(self.clock())
        if push is None:
            return
        self.stock_task = asyncio.create_task(self._push(push))

    async def _push(self, push: StockPush) -> None:
        calls = self.planner.stock(push)
        results = await asyncio.gather(*(self._send(c) for c in calls))
        if any(r.stopped for r in results):
            return  # stopping: the views stay uncommitted and are pushed after the restart
        for call, res in zip(calls, results, strict=True):
            if not res.accepted:
                record = {
                    "system": self.system,
                    "kind": "stock",
                    "outcome": "rejected",
                    "status": res.reply.status if res.reply else None,
                    "vendor_body": _scrub(res.reply.body if res.reply else b""),
                    "request": call.body,
                    "ts": int(self.wall() * 1000),
                }
                await self._retrying(lambda r=record: self.dlq.put([(None, orjson.dumps(r))]))  # type: ignore[misc]
        self.sync.accepted(push)
        self._settle(push.positions)
        n = len(push.atp)
        self.outcomes["stock"] += n
        DELIVERED.labels(self.system, "stock").inc(n)

    # ---- one call ----

    async def _send(self, call: Call) -> _Result:
        try:
            return await self._attempts(call)
        except _Stopped:
            # Stopping while waiting (bucket, circuit, backoff): nothing is in flight and
            # a recorded claim was released before the wait.
            return _Result(None, stopped=True)

    async def _attempts(self, call: Call) -> _Result:
        attempt = 0
        bucket = self.buckets[call.endpoint]
        recorded = self.planner.recorded and call.kind == "approved"
        while True:
            await self._wait_circuit()
            while (w := bucket.wait(self.clock())) > 0:
                await self._sleep(w)
            bucket.take(self.clock())
            async with self.sem:
                if self.stopping.is_set():
                    raise _Stopped
                if recorded:
                    # Claimed right before the request (again after a definite failure
                    # released it); another holder means a rebalance raced us.
                    claims = await self._retrying(lambda: self.record.claim(call.trigger_ids, self.run_id))
                    if any(c not in ("new", "mine") for c in claims):
                        ours = [i for i, c in zip(call.trigger_ids, claims, strict=True) if c in ("new", "mine")]
                        await self._retrying(lambda ours=ours: self.record.release(ours))  # type: ignore[misc]
                        return _Result(None, conflict=claims)
                t0 = self.clock()
                try:
                    reply: Reply | None = await self.http.call(call.method, call.path, call.body)
                    status = str(reply.status) if reply else "error"
                    kind = ""
                except Transient as exc:
                    reply, status, kind = None, exc.kind, exc.kind
                REQUEST_LATENCY.labels(self.system, call.endpoint).observe(self.clock() - t0)
            REQUESTS.labels(self.system, call.endpoint, status).inc()
            if reply is not None and 200 <= reply.status < 300:
                self._circuit_success()
                return _Result(reply)
            attempt += 1
            if reply is None and recorded and kind != "refused":
                # It may have reached Braze, which cannot dedup: never send it twice.
                self.circuit.failure(self.clock())
                return _Result(None, doubt=True)
            if recorded and (reply is None or reply.status == 429 or reply.status >= 500 or reply.status == 408):
                # Surely not sent: a crash while we wait must not leave it looking in doubt.
                await self._retrying(lambda: self.record.release(call.trigger_ids))
            if reply is None:
                self.circuit.failure(self.clock())
                await self._sleep(self.backoff.delay(attempt))
            elif reply.status == 429:
                # The vendor is up, only busy: close the circuit (a half-open probe that
                # got a 429 must not leave it open for ever) and wait as told.
                self._circuit_success()
                wait = retry_after(reply.headers)
                if wait is None:
                    wait = reset_wait(reply.headers, self.wall())
                await self._sleep(self.backoff.delay(attempt, wait))
            elif reply.status >= 500 or reply.status == 408:
                self.circuit.failure(self.clock())
                await self._sleep(self.backoff.delay(attempt))
            else:
                self._circuit_success()  # the vendor answers: it is up, the request is wrong
                return _Result(reply)

    def _circuit_success(self) -> None:
        self.circuit.success()
        CIRCUIT_OPEN.labels(self.system).set(0)

    async def _wait_circuit(self) -> None:
        while not self.circuit.allow(self.clock()):
            CIRCUIT_OPEN.labels(self.system).set(1)
            await self._sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        if self.stopping.is_set():
            raise _Stopped
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopped

    async def _retrying(self, op: Callable[[], Any]) -> Any:
        """Run a Redis or Kafka operation until it works (an outage pauses delivery)."""
        attempt = 0
        while True:
            try:
                return await op()
            except _Stopped:
                raise
            except Exception as exc:  # any store or broker failure: wait and try again
                attempt += 1
                log.warning("%s: %s, retrying", self.system, type(exc).__name__)
                await self._sleep(self.backoff.delay(attempt))

    # ---- the delivery DLQ ----

    async def _dead_letter(self, msgs: Sequence[Msg], outcome: str, reply: Reply | None, error: str) -> None:
        records = []
        for m in msgs:
            rec = {
                "system": self.system,
                "kind": m.kind,
                "topic": m.position[0],
                "partition": m.position[1],
                "offset": m.position[2],
                "trigger_id": m.value.get("trigger_id"),
                "outcome": outcome,
                "status": reply.status if reply else None,
                "vendor_body": _scrub(reply.body) if reply else None,
                "error": error,
                "message": m.value,
                "ts": int(self.wall() * 1000),
            }
            records.append((str(m.value.get("trigger_id")), orjson.dumps(rec)))
        await self._retrying(lambda: self.dlq.put(records))
        self._settle([m.position for m in msgs], outcome)

    async def _dead_letter_raw(self, bad: list[tuple[Incoming, str, str]]) -> None:
        records = []
        for m, kind, error in bad:
            rec = {
                "system": self.system,
                "kind": kind,
                "topic": m.topic,
                "partition": m.partition,
                "offset": m.offset,
                "outcome": "unsendable",
                "error": error,
                "raw": _scrub(m.value or b""),
                "ts": int(self.wall() * 1000),
            }
            records.append((None, orjson.dumps(rec)))
        await self._retrying(lambda: self.dlq.put(records))
        self._settle([(m.topic, m.partition, m.offset) for m, _k, _e in bad], "unsendable")


def _scrub(body: bytes) -> str:
    """Keep the start of a vendor's body as text, any email address masked."""
    return _EMAIL.sub(b"<email>", body[:_BODY_KEPT]).decode("utf-8", "replace")
