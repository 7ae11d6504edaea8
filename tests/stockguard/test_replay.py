"""Replay files through `stockguard replay`, checked against a naive reference model.

The acceptance scenario of the core issue: a simulated day with 25 % of SKUs out of
stock sends no out-of-stock item, suppresses none of the clearly sendable triggers,
re-targets to same-size substitutes in stock, and routes every malformed line to the DLQ.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from stockguard.cli import main
from stockguard.connectors.files import write_replay
from stockguard.sim import SimConfig, simulate
from stockguard.state.models import ContractError, parse_order, parse_product, parse_stock, parse_trigger
from tests.oracle import RefStock

BAD_LINES = [
    b"this line is not json at all",
    b'{"topic": "shop.orders"}',
    b'["not", "an", "object"]',
    b'{"topic": "shop.orders", "raw": "{\\"order_id\\": "}',
    orjson.dumps(
        {
            "topic": "shop.orders",
            "key": "o-x",
            "value": {
                "event_id": "o-x",
                "ts": 1764547300000,
                "order_id": "o-x",
                "status": "placed",
                "customer_id": "c",
                "lines": [{"sku": "A", "qty": -2, "unit_price": 1.0}],
            },
        }
    ),
    orjson.dumps(
        {
            "topic": "inventory.stock",
            "value": {"event_id": "s-x", "ts": 1764547300000, "type": "teleport", "sku": "A", "location": "L"},
        }
    ),
    orjson.dumps(
        {
            "topic": "marketing.triggers",
            "value": {
                "trigger_id": "t-x",
                "ts": 1764547300000,
                "campaign_id": "c",
                "customer_id": "c",
                "kind": "birthday",
                "channel": "email",
                "skus": ["A"],
                "consent": True,
            },
        }
    ),
    orjson.dumps({"topic": "marketing.triggers", "value": {"trigger_id": "t-y", "ts": "yesterday"}}),
]


def read_out(out: Path, topic: str) -> list[dict[str, Any]]:
    p = out / f"{topic}.jsonl"
    return [orjson.loads(line) for line in p.read_bytes().splitlines()] if p.exists() else []


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("day")
    cfg = SimConfig(seed=7, oos_fraction=0.25, customers=20000)
    events = list(simulate(cfg))
    src = tmp / "day.jsonl"
    write_replay(src, events)
    # Splice our own malformed lines in at known line numbers.
    lines = src.read_bytes().splitlines()
    bad_at = []
    for i, bad in enumerate(BAD_LINES):
        pos = 1000 + i * 5000
        lines.insert(pos, bad)
        bad_at.append(pos + 1)
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp / "out"
    assert main(["replay", str(src), "--out", str(out)]) == 0
    return {"events": events, "out": out, "bad_at": bad_at, "lines": len(lines)}


def test_replay_writes_one_file_per_output_topic(day: dict[str, Any]) -> None:
    names = {p.name for p in day["out"].iterdir()}
    assert {"marketing.triggers.approved.jsonl", "marketing.triggers.suppressed.jsonl", "stockguard.dlq.jsonl"} <= names


def test_every_trigger_ends_in_exactly_one_of_approved_suppressed_or_dlq(day: dict[str, Any]) -> None:
    valid: Counter[str] = Counter()
    invalid = 0
    for topic, _key, value in day["events"]:
        if topic != "marketing.triggers":
            continue
        if isinstance(value, str):
            invalid += 1
            continue
        try:
            valid[parse_trigger(value).trigger_id] += 1
        except ContractError:
            invalid += 1
    decided = Counter(m["trigger_id"] for m in read_out(day["out"], "marketing.triggers.approved"))
    decided.update(m["trigger_id"] for m in read_out(day["out"], "marketing.triggers.suppressed"))
    assert decided == valid
    dlq_triggers = [m for m in read_out(day["out"], "stockguard.dlq") if m["topic"] == "marketing.triggers"]
    assert len(dlq_triggers) == invalid + 2  # and our two spliced bad triggers


def test_every_malformed_line_reaches_the_dlq_with_a_reason(day: dict[str, Any]) -> None:
    dlq = read_out(day["out"], "stockguard.dlq")
    by_offset = {m["offset"]: m for m in dlq}
    for line in day["bad_at"]:
        assert line in by_offset, f"line {line} missing from the DLQ"
        assert by_offset[line]["error"]
    raw_text = sum(1 for _t, _k, v in day["events"] if isinstance(v, str))
    assert raw_text > 0
    assert sum(1 for m in dlq if m["error"].startswith("value: not JSON")) >= raw_text
    assert all(set(m) >= {"topic", "partition", "offset", "key", "raw", "error", "ts"} for m in dlq)


PARSERS = {"shop.orders": parse_order, "inventory.stock": parse_stock, "catalog.products": parse_product}


def valid(topic: str, value: Any) -> bool:
    if isinstance(value, str):
        return False
    parser = PARSERS.get(topic)
    if parser is None:
        return True
    try:
        parser(value)
    except ContractError:
        return False
    return True


def replay_reference(events: list[tuple[str, Any, Any]]) -> dict[str, dict[str, Any]]:
    """Walk the day with the reference model; note each trigger's world at its time."""
    ref = RefStock()
    seen_customers: set[str] = set()
    seen_ids: set[str] = set()
    buyers: set[str] = set()
    world: dict[str, dict[str, Any]] = {}
    for topic, _key, value in events:
        if isinstance(value, str):
            continue
        if topic == "marketing.triggers":
            try:
                t = parse_trigger(value)
            except ContractError:
                continue
            if t.trigger_id not in world:
                world[t.trigger_id] = {
                    "first_contact": t.customer_id not in seen_customers and t.trigger_id not in seen_ids,
                    "buyer": t.customer_id in buyers,
                    "consent": t.consent,
                    "kind": t.kind,
                    "skus": {s: (ref.atp(s), ref.known(s), ref.sellable(s)) for s in t.skus},
                    "subs": {s: _same_size_in_stock(ref, s) for s in t.skus},
                }
            seen_customers.add(t.customer_id)
            seen_ids.add(t.trigger_id)
            continue
        if not valid(topic, value):
            continue  # malformed: the flow dead-letters it, the reference skips it
        if topic == "shop.orders" and value["status"] == "placed":
            buyers.add(value["customer_id"])
        ref.apply(topic, value)
    return world


def _same_size_in_stock(ref: RefStock, sku: str) -> list[str]:
    p = ref.catalog.get(sku)
    if p is None:
        return []
    if p.get("substitutes"):
        cands = list(p["substitutes"])
    else:
        cands = [s for s, q in ref.catalog.items() if q["group"] == p["group"] and q["size"] == p["size"] and s != sku]
    return [c for c in cands if ref.known(c) and ref.sellable(c) and ref.atp(c) >= 50]


def test_no_approved_trigger_names_an_out_of_stock_sku(day: dict[str, Any]) -> None:
    world = replay_reference(day["events"])
    approved = read_out(day["out"], "marketing.triggers.approved")
    assert len(approved) > 1000
    ref = RefStock()
    atp_at: dict[str, dict[str, int]] = {}
    # Recompute ATP of the *chosen* skus (substitutes too) at each trigger's moment.
    wanted = {m["trigger_id"]: m["skus"] for m in approved}
    for topic, _key, value in day["events"]:
        if isinstance(value, str):
            continue
        if topic == "marketing.triggers":
            tid = value.get("trigger_id")
            if tid in wanted and tid not in atp_at:
                atp_at[tid] = {s: (ref.atp(s) if ref.known(s) else 1) * ref.sellable(s) for s in wanted[tid]}
            continue
        if valid(topic, value):
            ref.apply(topic, value)
    bad = [(tid, s) for tid, skus in atp_at.items() for s, atp in skus.items() if atp <= 0]
    assert bad == []
    assert all(m["consent"] is True for m in approved)
    assert world  # the reference saw the triggers


def test_clearly_sendable_triggers_are_all_sent(day: dict[str, Any]) -> None:
    world = replay_reference(day["events"])
    decided = {m["trigger_id"]: m for m in read_out(day["out"], "marketing.triggers.approved")}
    suppressed = {m["trigger_id"]: m for m in read_out(day["out"], "marketing.triggers.suppressed")}
    clear = [
        tid
        for tid, w in world.items()
        if w["consent"]
        and w["first_contact"]
        and not w["buyer"]
        and all(atp >= 50 and known and sellable for atp, known, sellable in w["skus"].values())
    ]
    assert len(clear) > 200
    wrong = [(tid, suppressed[tid]["reason"]) for tid in clear if tid not in decided]
    assert wrong == []
    assert all(decided[tid]["decision"] == "send" for tid in clear)


def test_out_of_stock_skus_with_a_same_size_substitute_are_retargeted(day: dict[str, Any]) -> None:
    world = replay_reference(day["events"])
    decided = {m["trigger_id"]: m for m in read_out(day["out"], "marketing.triggers.approved")}
    catalog = {v["sku"]: v for t, _k, v in day["events"] if t == "catalog.products" and isinstance(v, dict)}
    cases = [
        tid
        for tid, w in world.items()
        if w["consent"]
        and w["first_contact"]
        and not w["buyer"]
        and w["kind"] != "back_in_stock"
        and len(w["skus"]) == 1
        and all((atp <= 0 and known) for atp, known, _s in w["skus"].values())
        and all(w["subs"][s] for s in w["skus"])
    ]
    assert len(cases) >= 20
    for tid in cases:
        m = decided.get(tid)
        assert m is not None, f"{tid} was not re-targeted"
        assert m["decision"] == "retarget"
        for sub in m["substitutions"]:
            assert catalog[sub["to"]]["size"] == catalog[sub["from"]]["size"]
            assert sub["reason"] == "out_of_stock"


def test_same_input_gives_the_same_output(day: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "again.jsonl"
    write_replay(src, day["events"])
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert main(["replay", str(src), "--out", str(out_a)]) == 0
    assert main(["replay", str(src), "--out", str(out_b)]) == 0

    def strip(out: Path, topic: str) -> list[dict[str, Any]]:
        rows = read_out(out, topic)
        for r in rows:
            r.pop("decided_ts", None)
            if topic == "stockguard.dlq":
                r.pop("ts", None)
        return rows

    for topic in (
        "marketing.triggers.approved",
        "marketing.triggers.suppressed",
        "marketing.triggers.retracted",
        "stockguard.dlq",
    ):
        assert strip(out_a, topic) == strip(out_b, topic)


def test_replay_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_replay_prints_a_summary_with_throughput(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "small.jsonl"
    write_replay(src, list(simulate(SimConfig(seed=3, hours=1.0, skus=40, customers=500))))
    assert main(["replay", str(src), "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    for label in (
        "events read",
        "triggers approved",
        "re-targeted",
        "triggers suppressed",
        "retracted",
        "dead letters (DLQ)",
        "events/s",
    ):
        assert label in text
