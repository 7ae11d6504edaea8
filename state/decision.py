"""The decision rules of the contract, as pure transitions of one decision partition.

A decision partition owns the customers that hash to it (dedup, caps, purchases) and
holds a full replica of product state (stock, catalog, sales), because inventory,
catalog and order events are broadcast to every partition. Each partition therefore
decides its triggers exactly as one global process would, with one exception: the send
budget of a sku (`sends_per_unit` x ATP over `budget_window`) is split across the
`partitions` logical partitions, partition i getting floor(B/P) plus one of the B mod P
remainder sends when i < B mod P. With one partition every rule is exact.

Nothing here imports bytewax, Kafka or Redis; time is the events' `ts` and the decision
clock is injected.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

from mypy_extensions import mypyc_attr

from stockguard.config.settings import RuleSettings
from stockguard.state.inventory import SENT_STRIDE, Charge, OrderLedger, SkuState, StockBook
from stockguard.state.journal import Recorded
from stockguard.state.models import Order, Product, Removed, StockAdjustment, StockLevel, Trigger
from stockguard.state.pickling import restore, state_of

__all__ = [
    "APPROVED",
    "RETRACTED",
    "SUPPRESSED",
    "Decider",
    "DecisionState",
    "Emit",
    "partition_of",
]

APPROVED: Final = "approved"
SUPPRESSED: Final = "suppressed"
RETRACTED: Final = "retracted"

OUT_OF_STOCK: Final = "out_of_stock"
BUDGET: Final = "stock_budget_exhausted"

_HOUR: Final = 3_600_000
_SWEEP_EVERY: Final = 60_000

# (kind, key, message): kind is APPROVED, SUPPRESSED or RETRACTED, key the customer id.
Emit = tuple[str, str, dict[str, Any]]


def partition_of(customer_id: str, partitions: int) -> int:
    """Return the decision partition of a customer: stable across processes and runs."""
    if partitions == 1:
        return 0
    return zlib.crc32(customer_id.encode()) % partitions


def _ts(t: Trigger) -> Any:
    """Return the trigger's event time as the very object it holds, for storing.

    Compiled (mypyc), `t.ts` is unboxed to a machine int and boxed again at each store: one
    event time kept in the dedup index and the customer's cap would be two objects (at 5M
    customers, 3,743 -> 4,231 MB measured). Read through `Any`, it stays the one object.
    """
    return cast(Any, t).ts


def budget_share(total: int, partitions: int, index: int) -> int:
    """Split a send budget exactly: the shares of all partitions add up to `total`."""
    q, r = divmod(total, partitions)
    return q + (1 if index < r else 0)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Customer:
    """Hold what the rules need of one customer: approvals counted by the cap, orders."""

    __slots__ = ("approvals", "bucket", "orders")

    def __init__(self) -> None:
        # Event times of approved triggers that count against the frequency cap: None, one
        # int (most customers: a list would cost 80 bytes more each), or a list of several.
        self.approvals: int | list[int] | None = None
        # order_id -> [ts, skus, cancelled]; None until the first order (most have none:
        # an empty dict per customer is 64 bytes, 320 MB for 5M customers).
        self.orders: dict[str, list[Any]] | None = None
        # Hour bucket of the expiry wheel the customer sits in (-1: none).
        self.bucket = -1

    def __getstate__(self) -> tuple[object, ...]:
        return (self.approvals, self.orders, self.bucket)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        self.approvals, self.orders, self.bucket = s


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class DecisionState:
    """Hold all the state of one decision partition: small, picklable, bounded by TTLs."""

    def __init__(self, index: int, partitions: int) -> None:
        self.index = index
        self.partitions = partitions
        self.skus: dict[str, SkuState] = {}
        self.groups: dict[tuple[str, str], set[str]] = {}
        # A customer whose only state is one approval is held as that approval's event time
        # (an int shared with the dedup index): most customers of a big audience, at a
        # tenth of the memory of a Customer. It becomes a Customer on a second approval
        # or an order.
        self.customers: dict[str, Customer | int] = {}
        # Expiry wheel: hour -> customers whose data has all expired by then. A customer
        # moved to a later bucket leaves a stale entry behind (its `bucket` tells), which
        # costs 8 bytes where keeping sets exact cost a set entry per customer.
        self.wheel: dict[int, list[str]] = {}
        # Trigger ids -> event time, and the ids in arrival order for expiry: the queues
        # hold ids only (8 bytes each), the time is in the dict.
        self.decided: dict[str, int] = {}
        self.decided_q: deque[str] = deque()
        self.retracted: dict[str, int] = {}
        self.retracted_q: deque[str] = deque()
        # Orders the stock book applied: where their units were taken, for cancellations.
        self.ledger = OrderLedger()
        self.watermark = 0
        self.next_sweep = 0
        self.next_sku_sweep = 0

    def sizes(self) -> dict[str, int]:
        """Return the number of keys per kind of state, for metrics and benchmarks."""
        return {
            "skus": len(self.skus),
            "customers": len(self.customers),
            "decided_triggers": len(self.decided),
            "orders": len(self.ledger.orders),
        }

    def __getstate__(self) -> tuple[object, ...]:
        return state_of(self, _DECISION_FIELDS)

    def __setstate__(self, s: Any) -> None:
        if type(s) is dict and "orders" in s:
            # Before the one stock book (555fb64 and earlier) the order ledger was two fields.
            s = dict(s)
            ledger = OrderLedger()
            ledger.orders = {oid: e.entry() for oid, e in s.pop("orders").items()}
            ledger.queue = s.pop("orders_q")
            s["ledger"] = ledger
        restore(self, _DECISION_FIELDS, s)


_DECISION_FIELDS: Final = (
    "index",
    "partitions",
    "skus",
    "groups",
    "customers",
    "wheel",
    "decided",
    "decided_q",
    "retracted",
    "retracted_q",
    "ledger",
    "watermark",
    "next_sweep",
    "next_sku_sweep",
)


class Decider:
    """Apply the contract's rules to one partition's state."""

    __slots__ = ("_hours", "book", "clock", "dirty", "rules", "state")

    def __init__(
        self,
        state: DecisionState,
        rules: RuleSettings,
        clock: Callable[[], int],
        track_views: bool = False,
    ) -> None:
        self.state = state
        self.rules = rules
        self.clock = clock
        # Skus whose stock view changed since the last `take_views`; None when not tracked.
        self.dirty: set[str] | None = set() if track_views else None
        # One int object per wheel hour, shared by every customer in it (32 bytes each).
        self._hours: dict[int, int] = {}
        self.book = StockBook(state.ledger, self._sku_at, rules)

    def apply(self, ev: object, out: list[Emit]) -> None:
        """Apply any event routed to a decision partition (exact type dispatch: hot path)."""
        tp = type(ev)
        if tp is Trigger:
            self.on_trigger(ev, out)  # type: ignore[arg-type]
        elif tp is StockLevel or tp is StockAdjustment:
            self.on_stock(ev, out)  # type: ignore[arg-type]
        elif tp is Order:
            self.on_order(ev, out)  # type: ignore[arg-type]
        elif tp is Product:
            self.on_product(ev, out)  # type: ignore[arg-type]
        elif tp is Removed:
            self.on_removed(ev, out)  # type: ignore[arg-type]

    # ---- product side: broadcast to every partition ----

    def _sku(self, sku: str) -> SkuState:
        s = self.state.skus.get(sku)
        if s is None:
            s = self.state.skus[sku] = SkuState()
        return s

    def _sku_at(self, sku: str, _ts: int) -> SkuState:
        # The stock book's lookup: _sku inlined, one call per order line.
        s = self.state.skus.get(sku)
        if s is None:
            s = self.state.skus[sku] = SkuState()
        return s

    def _stock_ok(self, s: SkuState) -> bool:
        if not s.locs:
            return self.rules.unknown_stock_available
        return s.atp() > 0

    def _catalog_ok(self, s: SkuState) -> bool:
        p = s.product
        return p is None or (p.active and p.online)

    def _after_change(self, sku: str, s: SkuState, ts: int, out: list[Emit]) -> None:
        """Retract this partition's recent sends of a sku that has just become unavailable."""
        if self.dirty is not None:
            self.dirty.add(sku)
        now_ok = self._stock_ok(s) and self._catalog_ok(s)
        if s.available and not now_ok:
            self._retract(sku, s, ts, out)
        s.available = now_ok

    @staticmethod
    def _why_unavailable(s: SkuState) -> str:
        p = s.product
        if s.locs and s.atp() <= 0:
            return "ATP 0"
        if p is not None and not p.active:
            return "inactive in catalog"
        return "offline in catalog"

    def _retraction(self, tid: str, cid: str, campaign: str | None, sku: str, detail: str, ts: int) -> Emit:
        st = self.state
        st.retracted[tid] = ts
        st.retracted_q.append(tid)
        return (
            RETRACTED,
            cid,
            {
                "trigger_id": tid,
                "customer_id": cid,
                "campaign_id": campaign,
                "sku": sku,
                "reason": OUT_OF_STOCK,
                "detail": detail,
                "ts": ts,
            },
        )

    def _retract(self, sku: str, s: SkuState, ts: int, out: list[Emit]) -> None:
        st = self.state
        cut = ts - self.rules.retract_window
        detail = self._why_unavailable(s)
        sent = s.sent
        for i in range(0, len(sent), SENT_STRIDE):
            tid = sent[i + 1]
            if sent[i] < cut or tid in st.retracted:
                continue
            out.append(self._retraction(tid, sent[i + 2], sent[i + 3], sku, detail, ts))
        s.sent = ()

    def on_stock(self, ev: StockLevel | StockAdjustment, out: list[Emit]) -> None:
        """Apply a stock level or adjustment."""
        self._advance(ev.ts)
        s = self._sku(ev.sku)
        self.book.apply_stock(s, ev)
        self._after_change(ev.sku, s, ev.ts, out)

    def on_product(self, p: Product, out: list[Emit]) -> None:
        """Apply a catalog record: availability, substitutes, the group/size index."""
        self._advance(p.ts)
        st = self.state
        s = self._sku(p.sku)
        old = s.product
        if old is not None and old.ts > p.ts:
            return
        if old is not None and (old.group, old.size) != (p.group, p.size):
            members = st.groups.get((old.group, old.size))
            if members is not None:
                members.discard(p.sku)
        st.groups.setdefault((p.group, p.size), set()).add(p.sku)
        s.product = p
        self._after_change(p.sku, s, p.ts, out)

    def on_removed(self, r: Removed, out: list[Emit]) -> None:
        """Apply a catalog deletion: the sku is no longer sellable nor a substitute."""
        st = self.state
        s = st.skus.get(r.key)
        if s is None or s.product is None:
            return
        old = s.product
        members = st.groups.get((old.group, old.size))
        if members is not None:
            members.discard(r.key)
        s.product = old._replace(active=False, online=False, substitutes=None)
        self._after_change(r.key, s, r.ts if r.ts is not None else st.watermark, out)

    def on_order(self, o: Order, out: list[Emit]) -> None:
        """Apply an order to stock (every partition) and to its customer (owner only)."""
        self._advance(o.ts)
        st = self.state
        mine = partition_of(o.customer_id, st.partitions) == st.index
        if o.status == "placed":
            skus = st.skus
            dirty = self.dirty

            def after_line(ch: Charge) -> None:
                # Line by line: a sku that sells out mid-order retracts on the stock as it
                # stood then, before the order's later lines.
                if ch.taken:
                    self._after_change(ch.sku, skus[ch.sku], o.ts, out)
                elif dirty is not None:
                    dirty.add(ch.sku)

            if self.book.place(o, after_line) is None:
                return  # seen before: the book took its stock once
            if mine:
                c = self._customer(o.customer_id)
                if c.orders is None:
                    c.orders = {}
                c.orders[o.order_id] = [o.ts, tuple(line.sku for line in o.lines), False]
                self._schedule(o.customer_id, c)
            return
        # cancelled
        given = self.book.cancel(o)
        if given is None:
            return  # cancelled before: nothing changes, for stock nor customer
        for sku in given:
            self._after_change(sku, self._sku(sku), o.ts, out)
        if mine:
            owner = self.state.customers.get(o.customer_id)
            if type(owner) is Customer and owner.orders is not None and o.order_id in owner.orders:
                owner.orders[o.order_id][2] = True

    def resync_views(self) -> None:
        """Mark every known sku's view as changed: after a restart, views in flight may be lost."""
        if self.dirty is not None:
            self.dirty.update(self.state.skus)

    def take_views(self) -> list[dict[str, Any]]:
        """Return the stock view of every sku changed since the last call, and forget them."""
        if not self.dirty:
            return []
        st = self.state
        rules = self.rules
        now = st.watermark
        per_day = 86_400_000 / rules.velocity_window
        views = []
        for sku in sorted(self.dirty):
            s = st.skus.get(sku)
            if s is None:
                continue
            views.append(
                {
                    "sku": sku,
                    "atp": s.atp(),
                    "known": s.known,
                    "available": self._stock_ok(s) and self._catalog_ok(s),
                    "locations": {name: loc.atp for name, loc in sorted(s.locs.items())},
                    "units_per_day": s.units_sold(now, rules.velocity_window) * per_day,
                    "updated_ts": now,
                }
            )
        self.dirty.clear()
        return views

    # ---- customer side: triggers ----

    def _customer(self, cid: str) -> Customer:
        """Return the customer's full record, creating it or growing it from one approval."""
        c = self.state.customers.get(cid)
        if isinstance(c, Customer):
            return c
        full = self.state.customers[cid] = Customer()
        if c is not None:
            full.approvals = c
            full.bucket = self._one_approval_bucket(c)
        return full

    def _one_approval_bucket(self, ts: int) -> int:
        """Return the wheel bucket of a customer held as one approval at `ts`."""
        return (ts + self.rules.cap_window) // _HOUR + 1

    def _wheel_add(self, cid: str, bucket: int) -> int:
        hours = self._hours
        if len(hours) > 100_000:
            hours.clear()
        bucket = hours.setdefault(bucket, bucket)
        members = self.state.wheel.get(bucket)
        if members is None:
            self.state.wheel[bucket] = [cid]
        else:
            members.append(cid)
        return bucket

    def _schedule(self, cid: str, c: Customer) -> None:
        """Put the customer in the wheel bucket by which all its data has expired."""
        rules = self.rules
        expiry = 0
        ap = c.approvals
        if ap is not None:
            expiry = (ap if type(ap) is int else max(ap)) + rules.cap_window  # type: ignore[arg-type]
        if c.orders:
            for ts, _skus, _cancelled in c.orders.values():
                expiry = max(expiry, ts + rules.purchase_lookback)
        bucket = expiry // _HOUR + 1
        if bucket == c.bucket:
            return
        c.bucket = self._wheel_add(cid, bucket)

    def _unavailable(self, sku: str, s: SkuState | None, ts: int) -> str | None:
        """Return why a sku cannot be sent now, or None when it can."""
        if s is None:
            return None if self.rules.unknown_stock_available else OUT_OF_STOCK
        p = s.product
        if p is not None and not (p.active and p.online):
            return OUT_OF_STOCK
        if not s.locs:
            return None if self.rules.unknown_stock_available else OUT_OF_STOCK
        atp = s.atp()
        if atp <= 0:
            return OUT_OF_STOCK
        sends = s.sends
        cut = ts - self.rules.budget_window
        if sends and sends[0] <= cut:
            # Kept sorted (insort), so expiry is a bisect and one C-level slice delete.
            del sends[: bisect_right(sends, cut)]
        budget = budget_share(self.rules.sends_per_unit * atp, self.state.partitions, self.state.index)
        if len(sends) >= budget:
            return BUDGET
        return None

    def _cover_key(self, sku: str, s: SkuState | None, ts: int) -> tuple[float, float, str]:
        """Rank substitutes: most days of cover, then unit margin, then sku id."""
        if s is None or not s.locs:
            cover = -1.0  # unknown stock ranks after every known one
        else:
            sold = s.units_sold(ts, self.rules.velocity_window)
            days = self.rules.velocity_window / 86_400_000
            cover = math.inf if sold == 0 else s.atp() / (sold / days)
        margin = s.product.margin if s is not None and s.product is not None else 0.0
        return (-cover, -margin, sku)

    def _substitute(self, sku: str, ts: int, excluded: set[str]) -> str | None:
        st = self.state
        s = st.skus.get(sku)
        p = s.product if s is not None else None
        if p is None:
            return None
        if p.substitutes:
            candidates: list[str] | set[str] = list(p.substitutes)
        else:
            candidates = st.groups.get((p.group, p.size), set())
        best: tuple[float, float, str] | None = None
        for c in candidates:
            if c in excluded or c == sku:
                continue
            cs = st.skus.get(c)
            if self._unavailable(c, cs, ts) is not None:
                continue
            key = self._cover_key(c, cs, ts)
            if best is None or key < best:
                best = key
        return best[2] if best is not None else None

    def _suppress(self, t: Trigger, reason: str, detail: str | None = None) -> Emit:
        msg = dict(t.raw)
        msg["decision"] = "suppress"
        msg["reason"] = reason
        if detail is not None:
            msg["detail"] = detail
        msg["decided_ts"] = self.clock()
        return (SUPPRESSED, t.customer_id, msg)

    def on_trigger(self, t: Trigger, out: list[Emit]) -> None:
        """Decide one trigger: approve, re-target or suppress, in the contract's order."""
        self._advance(t.ts)
        st = self.state
        rules = self.rules
        tid = t.trigger_id
        # 1. duplicate
        if tid in st.decided:
            out.append(self._suppress(t, "duplicate"))
            return
        st.decided[tid] = _ts(t)
        st.decided_q.append(tid)
        # 2. consent
        if not t.consent:
            out.append(self._suppress(t, "no_consent"))
            return
        held = st.customers.get(t.customer_id)
        c = held if type(held) is Customer else None
        counts = t.kind != "back_in_stock"
        # 3. frequency cap
        ap = c.approvals if c is not None else held
        if counts and ap is not None:
            cut = t.ts - rules.cap_window
            if type(ap) is int:
                recent = [ap] if ap > cut else []
                if not recent and c is not None:
                    c.approvals = None
            else:
                recent = [a for a in ap if a > cut]  # type: ignore[union-attr]
                if len(recent) != len(ap) and c is not None:  # type: ignore[arg-type]
                    c.approvals = recent[0] if len(recent) == 1 else (recent or None)
            if sum(1 for a in recent if a <= t.ts) >= rules.cap_count:
                out.append(self._suppress(t, "frequency_capped"))
                return
        elif counts and rules.cap_count <= 0:
            out.append(self._suppress(t, "frequency_capped"))
            return
        # 4. already purchased
        bought: set[str] = set()
        if c is not None and c.orders:
            since = t.ts - rules.purchase_lookback
            for ots, skus, cancelled in c.orders.values():
                if not cancelled and since <= ots <= t.ts:
                    bought.update(skus)
        dropped: list[dict[str, str]] = []
        remaining = []
        for sku in t.skus:
            if sku in bought:
                dropped.append({"sku": sku, "reason": "already_purchased"})
            else:
                remaining.append(sku)
        if not remaining:
            out.append(self._suppress(t, "already_purchased"))
            return
        # 5. availability, substitution
        chosen: list[str] = []
        subs: list[dict[str, str]] = []
        first_reason: str | None = None
        excluded = set(t.skus) | bought
        for sku in remaining:
            reason = self._unavailable(sku, st.skus.get(sku), t.ts)
            if reason is None:
                chosen.append(sku)
                continue
            if t.kind != "back_in_stock":
                sub = self._substitute(sku, t.ts, excluded)
                if sub is not None:
                    chosen.append(sub)
                    excluded.add(sub)
                    subs.append({"from": sku, "to": sub, "reason": reason})
                    continue
            dropped.append({"sku": sku, "reason": reason})
            if first_reason is None:
                first_reason = reason
        if not chosen:
            assert first_reason is not None  # noqa: S101 - every remaining sku was dropped
            out.append(self._suppress(t, first_reason, detail=f"{remaining[0]}: {first_reason}"))
            return
        # 6. approve, and account for the send
        msg = dict(t.raw)
        msg["decision"] = "retarget" if subs else "send"
        msg["skus"] = chosen
        msg["original_skus"] = list(t.raw.get("skus", t.skus))
        msg["substitutions"] = subs
        if dropped:
            msg["dropped"] = dropped
        msg["decided_ts"] = self.clock()
        out.append((APPROVED, t.customer_id, msg))
        self._account(t, chosen, held, c)

    def _account(
        self, t: Trigger, chosen: list[str] | tuple[str, ...], held: Customer | int | None, c: Customer | None
    ) -> None:
        """Count an approval against the cap and the skus' send budgets and retraction lists."""
        st = self.state
        rules = self.rules
        tid = t.trigger_id
        # The event time as the one object the trigger holds: every list and tuple below
        # keeps a reference to it, not an int boxed again per store (see `_ts`).
        ts = _ts(t)
        if t.kind != "back_in_stock":
            if held is None or (c is None and held <= t.ts - rules.cap_window):  # type: ignore[operator]
                # Nothing held, or one approval the cap no longer counts: one int again.
                st.customers[t.customer_id] = ts
                self._wheel_add(t.customer_id, self._one_approval_bucket(t.ts))
            else:
                if c is None:
                    c = self._customer(t.customer_id)
                ap = c.approvals
                if ap is None:
                    c.approvals = ts
                elif type(ap) is int:
                    c.approvals = [ap, ts]
                else:
                    ap.append(ts)  # type: ignore[union-attr]
                self._schedule(t.customer_id, c)
        cut = t.ts - rules.retract_window
        for sku in chosen:
            s = self._sku(sku)
            sends = s.sends
            if sends:
                insort(sends, ts)
            else:
                s.sends = [ts]
            sent = s.sent
            if not sent:
                s.sent = [ts, tid, t.customer_id, t.campaign_id]
                continue
            sent.extend((ts, tid, t.customer_id, t.campaign_id))
            if sent[0] < cut:
                # Mostly in time order: drop the expired head without rebuilding the list.
                i = 0
                while i < len(sent) and sent[i] < cut:
                    i += SENT_STRIDE
                del sent[:i]

    # ---- after a restart: decisions already emitted are facts ----

    def preload_retractions(self, retracted: dict[str, int]) -> None:
        """Remember retractions sent before a restart, so none is sent twice."""
        st = self.state
        for tid, ts in retracted.items():
            if tid not in st.retracted:
                st.retracted[tid] = ts
                st.retracted_q.append(tid)

    def adopt(self, t: Trigger, rec: Recorded, out: list[Emit]) -> None:
        """Take the decision recorded for a re-read trigger as its own: its effects, no message.

        The stock read since may differ from the first time (another interleaving of the
        input partitions): a recorded send whose sku is unavailable now is retracted at
        once, unless its retraction was already sent.
        """
        self._advance(t.ts)
        st = self.state
        tid = t.trigger_id
        if not rec.approved and rec.reason == "duplicate":
            return
        if tid not in st.decided:
            st.decided[tid] = _ts(t)
            st.decided_q.append(tid)
        if not rec.approved:
            return
        held = st.customers.get(t.customer_id)
        self._account(t, rec.skus, held, held if type(held) is Customer else None)
        if tid in st.retracted:
            return
        for sku in rec.skus:
            s = st.skus.get(sku)
            if s is not None and not (self._stock_ok(s) and self._catalog_ok(s)):
                detail = self._why_unavailable(s)
                out.append(self._retraction(tid, t.customer_id, t.campaign_id, sku, detail, max(t.ts, st.watermark)))
                return

    # ---- time and eviction ----

    def _advance(self, ts: int) -> None:
        st = self.state
        if ts <= st.watermark:
            return
        st.watermark = ts
        if ts >= st.next_sweep:
            self.sweep()
            st.next_sweep = ts + _SWEEP_EVERY

    def sweep(self) -> None:
        """Evict everything older than its TTL at the current watermark."""
        st = self.state
        rules = self.rules
        now = st.watermark
        _expire(st.decided_q, st.decided, now - rules.dedup_window)
        _expire(st.retracted_q, st.retracted, now - rules.retract_window)
        self.book.expire(now)
        hour = now // _HOUR
        for b in [b for b in st.wheel if b <= hour]:
            for cid in st.wheel.pop(b):
                c = st.customers.get(cid)
                if c is None:
                    continue
                # An entry is stale when the customer has moved to a later bucket since.
                if (c.bucket if isinstance(c, Customer) else self._one_approval_bucket(c)) == b:
                    del st.customers[cid]
        if now >= st.next_sku_sweep:
            # Only frees memory of idle skus: every 6 h is plenty and keeps the scan rare.
            st.next_sku_sweep = now + 6 * _HOUR
            self._sweep_skus(now)

    def _sweep_skus(self, now: int) -> None:
        rules = self.rules
        dead = []
        for sku, s in self.state.skus.items():
            if s.sent and s.sent[-SENT_STRIDE] < now - rules.retract_window:
                s.sent = ()
            if s.sends and s.sends[-1] <= now - rules.budget_window:
                s.sends = ()
            if s.sales and s.sales[-1][0] < (now - rules.velocity_window) // _HOUR:
                s.clear_sales()
            if not s.locs and s.product is None and not s.sends and not s.sent and not s.sales:
                dead.append(sku)
        for sku in dead:
            del self.state.skus[sku]


def _expire(q: deque[str], index: dict[str, int], cut: int) -> None:
    """Forget the ids older than `cut`, oldest first, up to the first one still young."""
    while q:
        ts = index.get(q[0])
        if ts is not None and ts >= cut:
            return
        key = q.popleft()
        if ts is not None:
            del index[key]
