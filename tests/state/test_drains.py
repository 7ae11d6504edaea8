"""The per-location limit on drain alerts: bounded volume, nothing dropped that was open."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stockguard.config.settings import SurgeSettings
from stockguard.state.drains import MAX_TOP_SKUS, DrainAlert, DrainGate, DrainGateState
from stockguard.state.surge import SurgeState
from tests.helpers import MIN, T0

CFG = dataclasses.replace(SurgeSettings(), drain_max_per_window=3, drain_window=60 * MIN)


def drain(sku: str, ts: int, minutes: float, status: str = "open", loc: str = "WH-PARIS") -> DrainAlert:
    msg: dict[str, Any] = {
        "alert_id": f"{sku}-x",
        "kind": "stock_drain",
        "status": status,
        "ts": ts,
        "location": loc,
        "sku": sku,
        "top_skus": [{"sku": sku, "units_per_min": 1.0, "atp": 5, "minutes_to_stockout": minutes}],
    }
    return DrainAlert(ts, loc, msg)


def test_three_opens_an_hour_then_the_rest_fold_into_the_next_message_most_urgent_first() -> None:
    gate = DrainGate(DrainGateState(), CFG)
    out: list[dict[str, Any]] = []
    for i in range(10):
        gate.on_drain(drain(f"S{i}", T0 + i * MIN, minutes=100 - i), out)
    assert [m["sku"] for m in out] == ["S0", "S1", "S2"]
    # Nothing goes out until the first open leaves the window...
    gate.on_tick(T0 + 59 * MIN, out)
    assert len(out) == 3
    # ...then the most urgent held drain (S9: 91 min) opens, carrying the six others.
    gate.on_tick(T0 + 60 * MIN, out)
    assert len(out) == 4
    m = out[3]
    assert m["sku"] == "S9" and m["ts"] == T0 + 60 * MIN
    assert [t["sku"] for t in m["top_skus"]] == ["S9", "S8", "S7", "S6", "S5", "S4", "S3"]
    gate.on_tick(T0 + 61 * MIN, out)
    assert len(out) == 4  # nothing held any more


def test_a_new_open_carries_what_is_held_and_other_locations_have_their_own_limit() -> None:
    gate = DrainGate(DrainGateState(), CFG)
    out: list[dict[str, Any]] = []
    for i in range(5):
        gate.on_drain(drain(f"P{i}", T0 + i, minutes=50 + i), out)
    gate.on_drain(drain("L0", T0 + 5, minutes=10, loc="WH-LYON"), out)
    assert [m["sku"] for m in out] == ["P0", "P1", "P2", "L0"]
    gate.on_drain(drain("P9", T0 + 61 * MIN, minutes=30), out)
    assert [t["sku"] for t in out[-1]["top_skus"]] == ["P9", "P3", "P4"]


def test_resolved_only_for_a_published_drain_and_a_held_one_that_resolves_is_forgotten() -> None:
    gate = DrainGate(DrainGateState(), CFG)
    out: list[dict[str, Any]] = []
    for i in range(4):
        gate.on_drain(drain(f"S{i}", T0 + i, minutes=20), out)
    gate.on_drain(drain("S0", T0 + 10, minutes=0, status="resolved"), out)
    gate.on_drain(drain("S3", T0 + 11, minutes=0, status="resolved"), out)  # held, never told
    assert [(m["sku"], m["status"]) for m in out] == [
        ("S0", "open"),
        ("S1", "open"),
        ("S2", "open"),
        ("S0", "resolved"),
    ]
    gate.on_tick(T0 + 2 * 60 * MIN, out)
    assert len(out) == 4  # S3 was forgotten, not published late


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 300), st.integers(1, 200)), max_size=80))
def test_never_more_than_the_limit_in_a_window_and_every_open_drain_is_told_once(
    events: list[tuple[int, int, int]],
) -> None:
    gate = DrainGate(DrainGateState(), CFG)
    out: list[dict[str, Any]] = []
    opened: set[str] = set()
    for sku_i, minute, minutes in sorted(events, key=lambda e: e[1]):
        sku = f"S{sku_i}"
        if sku in opened:
            continue  # one episode a sku
        opened.add(sku)
        gate.on_drain(drain(sku, T0 + minute * MIN, minutes), out)
        gate.on_tick(T0 + minute * MIN, out)
    gate.on_tick(T0 + 10_000 * MIN, out)
    opens = sorted(m["ts"] for m in out if m["status"] == "open")
    for i, t in enumerate(opens):
        assert sum(1 for u in opens[i:] if u < t + 60 * MIN) <= 3
    told = [s["sku"] for m in out for s in m["top_skus"]]
    # Every drain reached staff exactly once, in messages of at most MAX_TOP_SKUS skus.
    assert len(told) == len(set(told))
    assert set(told) == opened
    assert all(len(m["top_skus"]) <= MAX_TOP_SKUS for m in out)


def test_the_gate_state_pickles_and_an_older_surge_snapshot_resumes_without_one() -> None:
    gate = DrainGate(DrainGateState(), CFG)
    out: list[dict[str, Any]] = []
    for i in range(5):
        gate.on_drain(drain(f"S{i}", T0 + i, minutes=20), out)
    back = pickle.loads(pickle.dumps(gate.state))
    assert set(back.locations["WH-PARIS"].held) == {"S3", "S4"}
    old = SurgeState()
    state = old.__getstate__()[:3]  # the three fields written before the gate
    fresh = SurgeState.__new__(SurgeState)
    fresh.__setstate__(state)
    assert fresh.drains.locations == {}
