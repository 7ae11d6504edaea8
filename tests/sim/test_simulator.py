"""Tests of the Cyber Monday input simulator (stockguard.sim)."""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from stockguard import sim
from stockguard.sim import SimConfig, simulate

Event = tuple[str, str | None, Any]

CLICK_TYPES = {"product_view", "add_to_cart", "remove_from_cart", "search", "wishlist"}
TRIGGER_KINDS = {"cart_abandonment", "browse_abandonment", "promotion", "back_in_stock", "price_drop"}
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


# --------------------------------------------------------------- contract checker


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_str(x: Any) -> bool:
    return isinstance(x, str) and x != ""


def contract_errors(topic: str, v: Any) -> list[str]:
    """Return what violates CONTRACT.md in one input message value (empty if valid)."""
    if not isinstance(v, dict):
        return ["not an object"]
    errs: list[str] = []

    def need(field: str, pred: Any, what: str) -> None:
        if field not in v:
            errs.append(f"{field}: missing")
        elif not pred(v[field]):
            errs.append(f"{field}: expected {what}")

    def opt(field: str, pred: Any, what: str) -> None:
        if field in v and not pred(v[field]):
            errs.append(f"{field}: expected {what}")

    need("ts", lambda x: _is_int(x) and x > 0, "positive int")
    if topic == "shop.clickstream":
        need("event_id", _is_str, "str")
        need("type", lambda x: x in CLICK_TYPES, "click type")
        need("customer_id", _is_str, "str")
        need("session_id", _is_str, "str")
        need("sku", _is_str, "str")
        need("qty", lambda x: _is_int(x) and x > 0, "positive int")
        opt("campaign_id", _is_str, "str")
    elif topic == "inventory.stock":
        need("event_id", _is_str, "str")
        need("sku", _is_str, "str")
        need("location", _is_str, "str")
        need("type", lambda x: x in {"level", "adjustment"}, "level|adjustment")
        if v.get("type") == "level":
            need("on_hand", lambda x: _is_int(x) and x >= 0, "int >= 0")
            need("reserved", lambda x: _is_int(x) and x >= 0, "int >= 0")
        elif v.get("type") == "adjustment":
            need("delta", lambda x: _is_int(x) and x != 0, "non-zero int")
            need("reason", _is_str, "str")
    elif topic == "shop.orders":
        need("event_id", _is_str, "str")
        need("order_id", _is_str, "str")
        need("status", lambda x: x in {"placed", "cancelled"}, "placed|cancelled")
        need("customer_id", _is_str, "str")
        opt("campaign_id", _is_str, "str")
        need("lines", lambda x: isinstance(x, list) and len(x) > 0, "non-empty list")
        for i, line in enumerate(v.get("lines") or []):
            if not isinstance(line, dict):
                errs.append(f"lines[{i}]: expected object")
                continue
            if not _is_str(line.get("sku")):
                errs.append(f"lines[{i}].sku: expected str")
            if not (_is_int(line.get("qty")) and line["qty"] > 0):
                errs.append(f"lines[{i}].qty: expected positive int")
            if not (_is_num(line.get("unit_price")) and line["unit_price"] >= 0):
                errs.append(f"lines[{i}].unit_price: expected number >= 0")
            if "location" in line and not _is_str(line["location"]):
                errs.append(f"lines[{i}].location: expected str")
    elif topic == "catalog.products":
        for f in ("sku", "product_id", "group"):
            need(f, _is_str, "str")
        need("size", lambda x: x in {"XS", "S", "M", "L", "XL"}, "size")
        need("price", lambda x: _is_num(x) and x > 0, "positive number")
        need("unit_cost", lambda x: _is_num(x) and x >= 0, "number >= 0")
        need("active", lambda x: isinstance(x, bool), "bool")
        need("online", lambda x: isinstance(x, bool), "bool")
        opt("substitutes", lambda x: isinstance(x, list) and all(_is_str(s) for s in x), "list of str")
    elif topic == "marketing.triggers":
        for f in ("trigger_id", "campaign_id", "customer_id", "channel"):
            need(f, _is_str, "str")
        need("kind", lambda x: x in TRIGGER_KINDS, "trigger kind")
        need("skus", lambda x: isinstance(x, list) and 1 <= len(x) and all(_is_str(s) for s in x), "list of str")
        need("consent", lambda x: isinstance(x, bool), "bool")
    elif topic == "marketing.campaigns":
        for f in ("campaign_id", "name"):
            need(f, _is_str, "str")
        for f in ("start_ts", "end_ts", "audience_size"):
            need(f, _is_int, "int")
        need("media_cost", _is_num, "number")
    else:
        errs.append(f"unknown topic {topic}")
    return errs


def is_valid(topic: str, v: Any) -> bool:
    return not contract_errors(topic, v)


# --------------------------------------------------------------- stock book (contract ATP)


class Book:
    """ATP per (sku, location) as CONTRACT.md defines it, fed in message order."""

    def __init__(self, locations: tuple[str, ...]) -> None:
        self.order = {loc: i for i, loc in enumerate(locations)}
        self.atp: dict[tuple[str, str], int] = {}
        self.locs: dict[str, list[str]] = defaultdict(list)
        self.alloc: dict[str, list[tuple[str, str, int]]] = {}

    def total(self, sku: str) -> int:
        return sum(max(0, self.atp[(sku, loc)]) for loc in self.locs[sku])

    def level(self, v: dict[str, Any]) -> int | None:
        """Apply a level; return the previous ATP of the pair (None if unknown)."""
        key = (v["sku"], v["location"])
        before = self.atp.get(key)
        if before is None:
            self.locs[v["sku"]].append(v["location"])
            self.locs[v["sku"]].sort(key=self.order.__getitem__)
        self.atp[key] = v["on_hand"] - v["reserved"]
        return before

    def adjust(self, v: dict[str, Any]) -> None:
        self.atp[(v["sku"], v["location"])] += v["delta"]

    def placed(self, v: dict[str, Any]) -> None:
        alloc = []
        for line in v["lines"]:
            sku = line["sku"]
            loc = line.get("location")
            if loc is None:
                loc = max(self.locs[sku], key=lambda x: (self.atp[(sku, x)], -self.order[x]))
            self.atp[(sku, loc)] -= line["qty"]
            alloc.append((sku, loc, line["qty"]))
        self.alloc[v["order_id"]] = alloc

    def cancelled(self, v: dict[str, Any]) -> None:
        for sku, loc, qty in self.alloc.pop(v["order_id"]):
            self.atp[(sku, loc)] += qty


# --------------------------------------------------------------- fixtures

CFG = SimConfig()


@pytest.fixture(scope="module")
def day() -> list[Event]:
    return list(simulate(CFG))


@pytest.fixture(scope="module")
def valid(day: list[Event]) -> list[Event]:
    return [e for e in day if is_valid(e[0], e[2])]


def _minute(ts: int) -> int:
    return (ts - CFG.start_ts) // MINUTE_MS


# --------------------------------------------------------------- tests


def test_standard_library_only() -> None:
    roots = set()
    for path in Path(sim.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("stockguard.sim"):
                roots.add(node.module.split(".")[0])
    assert roots <= set(sys.stdlib_module_names), roots - set(sys.stdlib_module_names)


def test_deterministic_for_a_seed() -> None:
    cfg = SimConfig(hours=12.0, events_per_hour=1500)
    first = list(simulate(cfg))
    assert first == list(simulate(cfg))
    other = list(simulate(SimConfig(seed=7, hours=12.0, events_per_hour=1500)))
    assert other != first


def test_size_and_topics(day: list[Event]) -> None:
    counts = Counter(t for t, _, _ in day)
    assert 100_000 <= len(day) <= 200_000, counts
    assert set(counts) == {
        "shop.clickstream",
        "inventory.stock",
        "shop.orders",
        "catalog.products",
        "marketing.triggers",
        "marketing.campaigns",
    }


def test_ts_non_decreasing(day: list[Event]) -> None:
    stamps = [v["ts"] for _, _, v in day if isinstance(v, dict) and type(v.get("ts")) is int]
    assert len(stamps) > 0.99 * len(day)
    assert all(a <= b for a, b in zip(stamps, stamps[1:], strict=False))
    assert stamps[0] == CFG.start_ts
    assert stamps[-1] < CFG.start_ts + int(CFG.hours * HOUR_MS)


def test_snapshot_comes_first(day: list[Event]) -> None:
    n = CFG.skus
    head = day[:n]
    assert all(t == "catalog.products" and k == v["sku"] for t, k, v in head)
    assert {v["sku"] for _, _, v in head} == {v["sku"] for t, _, v in day if t == "catalog.products"}
    camps = [v for t, _, v in day[n : n + 3]]
    assert [t for t, _, _ in day[n : n + 3]] == ["marketing.campaigns"] * 3
    assert {c["campaign_id"] for c in camps} >= {"cm-cyber", "cm-abandon"}
    cyber = next(c for c in camps if c["campaign_id"] == "cm-cyber")
    assert cyber["start_ts"] == CFG.start_ts + int(CFG.campaign_start_h * HOUR_MS)
    assert cyber["end_ts"] == cyber["start_ts"] + int(CFG.campaign_hours * HOUR_MS)
    rest = day[n + 3 :]
    levels = []
    for t, _, v in rest:
        if not (t == "inventory.stock" and v["ts"] == CFG.start_ts):
            break
        levels.append(v)
    assert levels and all(v["type"] == "level" for v in levels)
    skus = {v["sku"] for v in levels}
    assert len(skus) == n


def test_catalog_content(day: list[Event]) -> None:
    cat = [v for t, _, v in day if t == "catalog.products"]
    assert len(cat) == CFG.skus
    by_sku = {c["sku"]: c for c in cat}
    for c in cat:
        assert is_valid("catalog.products", c), contract_errors("catalog.products", c)
        assert c["sku"] == f"{c['product_id']}-{c['size']}"
        assert c["unit_cost"] < c["price"]
        for sub in c.get("substitutes", []):
            assert sub != c["sku"]
            assert by_sku[sub]["group"] == c["group"] and by_sku[sub]["size"] == c["size"]
    with_subs = sum("substitutes" in c for c in cat)
    assert 0.2 * len(cat) < with_subs < 0.5 * len(cat)
    assert 0 < sum(not c["active"] for c in cat) < 0.1 * len(cat)
    assert 0 < sum(not c["online"] for c in cat) < 0.1 * len(cat)


def test_keys(valid: list[Event]) -> None:
    key_field = {
        "shop.clickstream": "customer_id",
        "marketing.triggers": "customer_id",
        "inventory.stock": "sku",
        "catalog.products": "sku",
        "shop.orders": "order_id",
        "marketing.campaigns": "campaign_id",
    }
    for t, k, v in valid:
        assert k == v[key_field[t]], (t, k, v)


def test_malformed_share_and_shape(day: list[Event]) -> None:
    bad = [(t, v) for t, _, v in day if not is_valid(t, v)]
    share = len(bad) / len(day)
    assert 0.6 * CFG.bad_fraction <= share <= 1.4 * CFG.bad_fraction, share
    raw = [v for _, v in bad if isinstance(v, str)]
    dicts = [v for _, v in bad if isinstance(v, dict)]
    assert raw and dicts
    for text in raw:
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        pytest.fail(f"malformed raw text parses as JSON: {parsed!r}")
    assert len({t for t, _ in bad}) >= 3
    assert all(t != "catalog.products" and t != "marketing.campaigns" for t, _ in bad)


def test_no_malformed_when_disabled() -> None:
    events = list(simulate(SimConfig(hours=6.0, bad_fraction=0.0)))
    assert all(is_valid(t, v) for t, _, v in events)


def test_ids_unique(valid: list[Event]) -> None:
    for topic in ("shop.clickstream", "inventory.stock", "shop.orders"):
        ids = [v["event_id"] for t, _, v in valid if t == topic]
        assert len(ids) == len(set(ids)), topic


def test_clickstream_mix(valid: list[Event]) -> None:
    types = Counter(v["type"] for t, _, v in valid if t == "shop.clickstream")
    assert set(types) == CLICK_TYPES
    assert types.most_common(1)[0][0] == "product_view"
    cs = CFG.start_ts + int(CFG.campaign_start_h * HOUR_MS)
    ce = cs + int(CFG.campaign_hours * HOUR_MS)
    in_camp = [v for t, _, v in valid if t == "shop.clickstream" and cs <= v["ts"] < ce]
    tagged = sum(v.get("campaign_id") == "cm-cyber" for v in in_camp)
    assert 0.3 < tagged / len(in_camp) < 0.95


def test_campaign_surge_at_surge_location(valid: list[Event]) -> None:
    units: Counter[int] = Counter()
    orders_in_window: Counter[str | None] = Counter()
    cs = int(CFG.campaign_start_h * 60)
    ce = cs + int(CFG.campaign_hours * 60)
    for t, _, v in valid:
        if t != "shop.orders" or v["status"] != "placed":
            continue
        m = _minute(v["ts"])
        if cs <= m < ce:
            orders_in_window[v.get("campaign_id")] += 1
        for line in v["lines"]:
            if line.get("location") == CFG.surge_location:
                units[m] += line["qty"]
    total = int(CFG.hours * 60)
    campaign = sum(units[m] for m in range(cs, ce)) / (ce - cs)
    baseline = sum(units[m] for m in range(total) if not cs <= m < ce) / (total - (ce - cs))
    hour_before = sum(units[m] for m in range(cs - 60, cs)) / 60
    assert campaign >= 5 * baseline, (campaign, baseline)
    assert campaign >= 5 * hour_before, (campaign, hour_before)
    assert campaign >= 10  # enough for a surge alert (50 units in 5 min)
    assert orders_in_window["cm-cyber"] > 0.6 * sum(orders_in_window.values())


def test_orders_and_cancellations(valid: list[Event]) -> None:
    placed = {v["order_id"]: v for t, _, v in valid if t == "shop.orders" and v["status"] == "placed"}
    cancelled = [v for t, _, v in valid if t == "shop.orders" and v["status"] == "cancelled"]
    assert 0.015 < len(cancelled) / len(placed) < 0.05
    for c in cancelled:
        p = placed[c["order_id"]]
        assert c["lines"] == p["lines"] and c["customer_id"] == p["customer_id"]
        assert c["ts"] > p["ts"]
    lines = [line for p in placed.values() for line in p["lines"]]
    unlocated = sum("location" not in line for line in lines) / len(lines)
    assert 0.2 < unlocated < 0.4


def test_stock_book(valid: list[Event]) -> None:
    """Sell-outs happen, the restock brings skus back, WMS levels match the events."""
    book = Book(CFG.locations)
    restock_from = CFG.start_ts + 16 * HOUR_MS
    sold_out: set[str] = set()
    restocked: dict[str, int] = {}
    resync_diffs: list[int] = []
    initial: dict[str, int] = {}
    reasons: Counter[str] = Counter()
    for t, _, v in valid:
        if t == "inventory.stock":
            if v["type"] == "level":
                before = book.level(v)
                if v["ts"] == CFG.start_ts:
                    continue
                assert before is not None
                resync_diffs.append(v["on_hand"] - v["reserved"] - before)
            else:
                reasons[v["reason"]] += 1
                assert (v["delta"] > 0) == (v["reason"] in {"receipt", "return"})
                was = book.total(v["sku"])
                book.adjust(v)
                big = v["reason"] == "receipt" and v["delta"] >= 40
                if big and was == 0 and restock_from <= v["ts"] < restock_from + 15 * MINUTE_MS:
                    restocked.setdefault(v["sku"], v["ts"])
        elif t == "shop.orders":
            if not initial:
                initial = {sku: book.total(sku) for sku in book.locs}
            if v["status"] == "placed":
                book.placed(v)
                for line in v["lines"]:
                    if initial[line["sku"]] > 0 and book.total(line["sku"]) <= 0:
                        sold_out.add(line["sku"])
            else:
                book.cancelled(v)
    assert len(sold_out) >= 5, sold_out
    assert len(restocked) >= 10
    assert reasons["receipt"] > len(restocked) and reasons["damage"] > 0
    # The WMS reports exactly the ATP implied by the events, but for cycle counts.
    assert len(resync_diffs) > 1000
    assert all(abs(d) <= 2 for d in resync_diffs)
    assert sum(d != 0 for d in resync_diffs) < 0.15 * len(resync_diffs)
    # Back-in-stock triggers follow the restock of the same skus.
    bis = [v for t, _, v in valid if t == "marketing.triggers" and v["kind"] == "back_in_stock"]
    after = [v for v in bis if v["skus"][0] in restocked and v["ts"] > restocked[v["skus"][0]]]
    assert len(after) > 0.8 * len(bis)
    assert len({v["skus"][0] for v in after}) >= 10


def test_triggers(valid: list[Event]) -> None:
    trig = [v for t, _, v in valid if t == "marketing.triggers"]
    kinds = Counter(v["kind"] for v in trig)
    assert set(kinds) == TRIGGER_KINDS
    cs = CFG.start_ts + int(CFG.campaign_start_h * HOUR_MS)
    ce = cs + int(CFG.campaign_hours * HOUR_MS)
    promos = [v for v in trig if v["kind"] == "promotion"]
    # Promotions are sent in the campaign window (a duplicate re-send may come up to 10 min later).
    assert all(cs <= v["ts"] < ce + 10 * MINUTE_MS and v["campaign_id"] == "cm-cyber" for v in promos)
    per_hour_in = sum(cs <= v["ts"] < ce for v in trig) / CFG.campaign_hours
    per_hour_out = sum(not cs <= v["ts"] < ce for v in trig) / (CFG.hours - CFG.campaign_hours)
    assert per_hour_in > 3 * per_hour_out
    assert all(1 <= len(v["skus"]) <= 3 for v in trig)
    consent = sum(v["consent"] for v in trig) / len(trig)
    assert 0.92 < consent < 0.98
    assert {v["channel"] for v in trig} == {"email", "sms", "push"}
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in trig:
        by_id[v["trigger_id"]].append(v)
    dups = [vs for vs in by_id.values() if len(vs) > 1]
    assert dups
    for vs in dups:
        first = {k: x for k, x in vs[0].items() if k != "ts"}
        assert all({k: x for k, x in o.items() if k != "ts"} == first for o in vs[1:])
    assert len(dups) < 0.01 * len(by_id)


def test_cart_abandonment_follows_a_cart(valid: list[Event]) -> None:
    carts: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for t, _, v in valid:
        if t == "shop.clickstream" and v["type"] == "add_to_cart":
            carts[v["customer_id"]].append((v["ts"], v["sku"]))
    for t, _, v in valid:
        if t == "marketing.triggers" and v["kind"] == "cart_abandonment":
            added = {sku for ts, sku in carts[v["customer_id"]] if ts < v["ts"]}
            assert set(v["skus"]) <= added


def test_short_and_odd_configs() -> None:
    cfg = SimConfig(seed=3, hours=0.5, skus=37, locations=("A",), surge_location="B", customers=5)
    events = list(simulate(cfg))
    assert sum(t == "catalog.products" for t, _, _ in events) == 37
    end = cfg.start_ts + int(cfg.hours * HOUR_MS)
    assert all(v["ts"] < end for _, _, v in events if isinstance(v, dict) and type(v.get("ts")) is int)
