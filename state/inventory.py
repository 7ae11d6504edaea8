"""The one stock book: ATP per sku and location from levels, adjustments and orders.

The decision partitions and the sku monitors both keep ATP with `StockBook`, so the
decisions and the surge/drain views agree about it (but for the expiry below).

ATP per (sku, location) = on_hand - reserved from the last `level`, plus the deltas
(adjustments, orders, cancellations) with an event time after that level. A delta at or
before the level's time is already counted by it and is ignored. A level that arrives
after deltas with later times re-applies those deltas, as long as they are within
`stock_lateness` of the newest delta; a level older than the current one is stale and
ignored. An adjustment for a location with no level starts it at 0. ATP(sku) is the sum
over locations of max(0, ATP).

Orders: each line of a placed order takes its units from its location, or, when it names
none, from the location with the highest ATP (ties: lowest id); a line for a location we
hold no stock for is not taken (its first level will include it). A placed order is
charged once: a redelivery, or a placement after its cancellation, changes nothing. A
cancellation gives the units back where they were taken, once; a cancellation of an
order we never saw gives back only the lines that name their location. The book
remembers an order until its owner's clock passes `order_ttl` after it (`expire`): the
decision partitions on every event they see, a monitor on the events of its skus. So
the two agree on ATP except for an order event that arrives when one has forgotten the
order and the other not, a week (`order_ttl`) after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from mypy_extensions import mypyc_attr

from stockguard.config.settings import RuleSettings
from stockguard.state.models import Order, Product, StockAdjustment, StockLevel
from stockguard.state.pickling import fields

__all__ = [
    "NO_LEVEL",
    "Charge",
    "LedgerEntry",
    "LegacyLedgerEntry",
    "LocStock",
    "Locations",
    "SENT_STRIDE",
    "OrderLedger",
    "SkuState",
    "StockBook",
]

NO_LEVEL: Final = -1
# Items a send takes in `SkuState.sent`: ts, trigger_id, customer_id, campaign_id.
SENT_STRIDE: Final = 4
_HOUR: Final = 3_600_000


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class LocStock:
    """Hold the ATP of one sku at one location."""

    __slots__ = ("atp", "level_ts", "name", "recent")

    def __init__(self, level_ts: int = NO_LEVEL, atp: int = 0, name: str = "") -> None:
        self.name = name
        self.level_ts = level_ts
        self.atp = atp
        # (ts, delta) applied after the level, kept only `stock_lateness` back.
        self.recent: list[tuple[int, int]] | None = None

    def set_level(self, ts: int, on_hand: int, reserved: int) -> bool:
        """Reset to an absolute level; return False when the level is stale."""
        if ts < self.level_ts:
            return False
        atp = on_hand - reserved
        if self.recent:
            for t, d in self.recent:
                if t > ts:
                    atp += d
        self.level_ts = ts
        self.atp = atp
        return True

    def apply(self, ts: int, delta: int, lateness: int) -> bool:
        """Apply a delta with event time `ts`; return False when the level already has it."""
        if ts <= self.level_ts:
            return False
        self.atp += delta
        recent = self.recent
        if recent is None:
            self.recent = [(ts, delta)]
            return True
        recent.append((ts, delta))
        cut = ts - lateness
        if recent[0][0] < cut:
            # Mostly in time order: drop the expired head in place.
            i = 0
            while i < len(recent) and recent[i][0] < cut:
                i += 1
            del recent[:i]
            if not recent:
                self.recent = None
        return True

    def __getstate__(self) -> tuple[int, int, list[tuple[int, int]] | None, str]:
        return (self.level_ts, self.atp, self.recent, self.name)

    def __setstate__(self, s: tuple[int, int, list[tuple[int, int]] | None, str]) -> None:
        self.level_ts, self.atp, self.recent, self.name = s


@mypyc_attr(native_class=False)  # mypyc cannot compile a subclass of list
class Locations(list[LocStock]):
    """Map location names to a sku's `LocStock`s: a list searched by name.

    A sku is stocked at a few locations (usually one); a dict per sku costs 200 bytes
    where this list costs 80, and a scan of a few names is as fast as a hash lookup.
    """

    __slots__ = ()

    def get(self, name: str) -> LocStock | None:
        """Return the stock at `name`, or None."""
        for loc in self:
            if loc.name == name:
                return loc
        return None

    def put(self, name: str, loc: LocStock) -> LocStock:
        """Add the stock of a new location; return it."""
        loc.name = name
        self.append(loc)
        return loc

    def values(self) -> list[LocStock]:
        """Return the stocks, like dict.values()."""
        return self

    def items(self) -> list[tuple[str, LocStock]]:
        """Return (name, stock) pairs, like dict.items()."""
        return [(loc.name, loc) for loc in self]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SkuState:
    """Hold what one decision partition knows of a sku: stock, catalog, sales, sends."""

    __slots__ = ("available", "locs", "product", "sales", "sends", "sent", "sold")

    def __init__(self) -> None:
        self.locs = Locations()
        # None until the catalog names the sku.
        self.product: Product | None = None
        # The three lists start as the shared empty tuple and become lists on first use:
        # most skus never get a send, and three empty lists are 168 bytes per sku and copy.
        # [hour, units] buckets of units ordered, newest last, for days of cover.
        self.sales: list[list[int]] | tuple[()] = ()
        # Units in `sales`: a running total, so days of cover need no sum per candidate.
        self.sold = 0
        # Event times of this partition's approved sends of the sku (the send budget), sorted.
        self.sends: list[int] | tuple[()] = ()
        # ts, trigger_id, customer_id, campaign_id of each send approved with the sku, for
        # retraction: flat, SENT_STRIDE items a send. A tuple a send cost 64 bytes more
        # (at 5M approvals, 320 MB).
        self.sent: list[Any] | tuple[()] = ()
        # Availability as last computed, to see transitions.
        self.available = True

    @property
    def known(self) -> bool:
        """Tell whether any stock event was seen for the sku."""
        return bool(self.locs)

    def atp(self) -> int:
        """Return ATP over all locations, each location counted at max(0, ATP)."""
        total = 0
        for loc in self.locs.values():
            if loc.atp > 0:
                total += loc.atp
        return total

    def best_location(self) -> str | None:
        """Return the location with the highest ATP (ties: lowest id), for unlocated lines."""
        best: str | None = None
        best_atp = 0
        for loc in self.locs:
            name = loc.name
            if best is None or loc.atp > best_atp or (loc.atp == best_atp and name < best):
                best, best_atp = name, loc.atp
        return best

    def add_sale(self, ts: int, units: int, window: int) -> None:
        """Count units ordered in an hour bucket, dropping buckets older than `window`."""
        hour = ts // _HOUR
        sales = self.sales
        self.sold += units
        if not sales:
            self.sales = [[hour, units]]
            return
        assert type(sales) is list  # noqa: S101 - only the empty default is a tuple
        if sales[-1][0] == hour:
            sales[-1][1] += units
        elif sales[-1][0] < hour:
            sales.append([hour, units])
            oldest = (ts - window) // _HOUR
            if sales[0][0] < oldest:
                i = 0
                while sales[i][0] < oldest:
                    self.sold -= sales[i][1]
                    i += 1
                del sales[:i]
        else:
            # A late order (another partition was ahead): same totals as in time order.
            for i, b in enumerate(sales):
                if b[0] == hour:
                    b[1] += units
                    break
                if b[0] > hour:
                    sales.insert(i, [hour, units])
                    break

    def units_sold(self, now: int, window: int) -> int:
        """Return units ordered in the hour buckets within `window` before `now`."""
        oldest = (now - window) // _HOUR
        total = self.sold
        # Buckets are in hour order and evicted as sales arrive: few, if any, are too old.
        for h, u in self.sales:
            if h >= oldest:
                break
            total -= u
        return total

    def clear_sales(self) -> None:
        """Forget every sales bucket (an idle sku's)."""
        self.sales = ()
        self.sold = 0

    def __getstate__(self) -> tuple[object, ...]:
        return (self.locs, self.product, self.sales, self.sends, self.sent, self.available)

    def __setstate__(self, s: tuple[object, ...]) -> None:
        (self.locs, self.product, self.sales, self.sends, self.sent, self.available) = s  # type: ignore[assignment]
        self.sold = sum(u for _h, u in self.sales)
        if self.sent and type(self.sent[0]) is tuple:
            # Written before the flat form: a (ts, trigger_id, customer_id, campaign_id) a send.
            self.sent = [x for entry in self.sent for x in entry]


class Charge(NamedTuple):
    """One line of a placed order as the stock book applied it."""

    sku: str
    qty: int
    # The line's location, else the one with the highest ATP; None when no stock is known.
    location: str | None
    # ATP left at that location after the line (0 when the book holds no stock there).
    atp: int
    # False when the location holds no stock record: nothing was taken.
    taken: bool


# An order the book applied: (ts, charges, cancelled), with charges ((sku, location, qty),
# ...) for the lines whose units were taken. Plain tuples, replaced on cancellation: the GC
# stops tracking a tuple of plain values, where a long-lived object per order would be
# walked at every collection (measured: a third more GC time on a replay).
LedgerEntry = tuple[int, tuple[tuple[str, str, int], ...], bool]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class LegacyLedgerEntry:
    """Read an order ledger entry pickled before the one stock book (555fb64 and earlier)."""

    __slots__ = ("cancelled", "charges", "ts")

    def __init__(self, ts: int, charges: list[tuple[str, str, int]], cancelled: bool = False) -> None:
        self.ts = ts
        self.charges = charges
        self.cancelled = cancelled

    def __getstate__(self) -> tuple[object, ...]:
        return (self.ts, self.charges, self.cancelled)

    def __setstate__(self, s: Any) -> None:
        # Written by a slotted dataclass: copyreg's (None, {slot: value}).
        self.ts, self.charges, self.cancelled = fields(s, ("ts", "charges", "cancelled"))

    def entry(self) -> LedgerEntry:
        """Return the entry as the stock book keeps it."""
        return (self.ts, tuple(self.charges), self.cancelled)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class OrderLedger:
    """Hold the orders a stock book has applied, each until `order_ttl` after its time."""

    __slots__ = ("orders", "queue")

    def __init__(self) -> None:
        self.orders: dict[str, LedgerEntry] = {}
        # (ts, order_id) in arrival order, for expiry.
        self.queue: deque[tuple[int, str]] = deque()

    def add(self, order_id: str, entry: LedgerEntry) -> None:
        """Remember an order."""
        self.orders[order_id] = entry
        self.queue.append((entry[0], order_id))

    def __getstate__(self) -> tuple[object, ...]:
        return (self.orders, self.queue)

    def __setstate__(self, s: tuple[object, ...]) -> None:
        # A third item, an order clock, was written by development builds before 0967d5e+1.
        self.orders, self.queue = s[:2]  # type: ignore[assignment]


# The SkuState of a sku, created on first use; the event time asks for it.
SkuLookup = Callable[[str, int], SkuState]
# A Charge per order line: tuple.__new__ skips the NamedTuple constructor's Python frame.
_new = tuple.__new__


class StockBook:
    """Apply stock events and orders to ATP: the arithmetic every view of stock shares."""

    __slots__ = ("lateness", "ledger", "lookup", "order_ttl", "velocity_window")

    def __init__(self, ledger: OrderLedger, lookup: SkuLookup, rules: RuleSettings) -> None:
        self.ledger = ledger
        self.lookup = lookup
        self.lateness = rules.stock_lateness
        self.velocity_window = rules.velocity_window
        self.order_ttl = rules.order_ttl

    def apply_stock(self, s: SkuState, ev: StockLevel | StockAdjustment) -> None:
        """Apply a stock level or adjustment to the sku's location."""
        loc = s.locs.get(ev.location)
        if loc is None:
            # No level yet: an adjustment is the first we know of on_hand here.
            loc = s.locs.put(ev.location, LocStock())
        if type(ev) is StockLevel:
            loc.set_level(ev.ts, ev.on_hand, ev.reserved)
        else:
            loc.apply(ev.ts, ev.delta, self.lateness)  # type: ignore[union-attr]

    def place(self, o: Order, each: Callable[[Charge], None] | None = None) -> list[Charge] | None:
        """Take a placed order's units, line by line; None when the order was seen before.

        `each` sees every line's Charge right after it was applied, before the next line:
        a line's effects (a retraction) see the stock as that line left it.
        """
        ledger = self.ledger
        if o.order_id in ledger.orders:
            return None  # a redelivered order must not take stock twice
        lookup = self.lookup
        out: list[Charge] = []
        taken: list[tuple[str, str, int]] = []
        for line in o.lines:
            s = lookup(line.sku, o.ts)
            s.add_sale(o.ts, line.qty, self.velocity_window)
            name = line.location if line.location is not None else s.best_location()
            loc = s.locs.get(name) if name is not None else None
            if loc is None:
                # A location we hold no stock for: its first level will include this order.
                ch = _new(Charge, (line.sku, line.qty, name, 0, False))
            else:
                loc.apply(o.ts, -line.qty, self.lateness)
                taken.append((line.sku, loc.name, line.qty))
                ch = _new(Charge, (line.sku, line.qty, loc.name, loc.atp, True))
            out.append(ch)
            if each is not None:
                each(ch)
        ledger.add(o.order_id, (o.ts, tuple(taken), False))
        return out

    def cancel(self, o: Order) -> list[str] | None:
        """Give a cancelled order's units back where they were taken; return those skus.

        None when the order was cancelled before: a repeated cancellation changes nothing.
        """
        ledger = self.ledger
        lookup = self.lookup
        given: list[str] = []
        entry = ledger.orders.get(o.order_id)
        if entry is not None:
            ts, charges, cancelled = entry
            if cancelled:
                return None
            ledger.orders[o.order_id] = (ts, charges, True)
            for sku, name, qty in charges:
                loc = lookup(sku, o.ts).locs.get(name)
                if loc is not None:
                    loc.apply(o.ts, qty, self.lateness)
                    given.append(sku)
            return given
        # Placed before our memory: only lines that name their location can be given back.
        ledger.add(o.order_id, (o.ts, (), True))
        for line in o.lines:
            if line.location is None:
                continue
            loc = lookup(line.sku, o.ts).locs.get(line.location)
            if loc is not None:
                loc.apply(o.ts, line.qty, self.lateness)
                given.append(line.sku)
        return given

    def expire(self, now: int) -> None:
        """Forget the orders older than `order_ttl` before `now`, the owner's clock."""
        ledger = self.ledger
        cut = now - self.order_ttl
        q = ledger.queue
        while q and q[0][0] < cut:
            _, oid = q.popleft()
            e = ledger.orders.get(oid)
            if e is not None and e[0] < cut:
                del ledger.orders[oid]
