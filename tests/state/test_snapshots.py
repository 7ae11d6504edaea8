"""Snapshot envelopes: round trips, every legacy format, and refusals that say what to do."""

from __future__ import annotations

import gzip
import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from stockguard.state import snapshots
from stockguard.state.campaigns import CampaignState
from stockguard.state.decision import DecisionState
from stockguard.state.monitor import MonitorState, SkuWatch
from stockguard.state.snapshots import SnapshotError
from stockguard.state.surge import SurgeState

STORE = Path(__file__).resolve().parent.parent / "fixtures" / "store-555fb64" / "part-0.sqlite3.gz"
TEMPLATES: dict[str, object] = {
    "decide_triggers": DecisionState(0, 1),
    "monitor_skus": MonitorState(0),
    "watch_locations": SurgeState(),
    "track_campaigns": CampaignState(),
}


def legacy_snaps(tmp_path: Path) -> dict[tuple[str, str], bytes]:
    """Read every step's snapshot out of the recovery store written by 555fb64."""
    db = tmp_path / "part-0.sqlite3"
    db.write_bytes(gzip.decompress(STORE.read_bytes()))
    rows = sqlite3.connect(db).execute("SELECT step_id, state_key, ser_change FROM snaps").fetchall()
    # Bytewax pickles what a step's snapshot() returned: ours are bytes.
    return {(step.split(".", 1)[1], key): pickle.loads(ser) for step, key, ser in rows}  # noqa: S301


def test_a_state_round_trips_with_its_step_and_wall_time() -> None:
    st = DecisionState(2, 4)
    st.decided["t1"] = 5
    snap = snapshots.load(
        "decide_triggers", snapshots.dump("decide_triggers", st, 123), DecisionState, DecisionState(0, 4)
    )
    assert snap.format == snapshots.FORMAT and snap.wall_ms == 123
    assert snap.state.index == 2 and snap.state.decided == {"t1": 5}


def test_every_step_of_a_store_written_before_the_namespace_loads(tmp_path: Path) -> None:
    snaps = legacy_snaps(tmp_path)
    steps = {step for step, _key in snaps}
    assert steps >= set(TEMPLATES), steps
    for (step, key), data in snaps.items():
        if step not in TEMPLATES:
            continue  # the replay source's offsets: builtins, no classes
        # The legacy pickles name top-level modules: the mapping is what reads them.
        assert b"stockguard" not in data
        template = TEMPLATES[step]
        snap = snapshots.load(step, data, type(template), template)
        assert type(snap.state) is type(template)
        assert snap.format == (2 if step == "decide_triggers" else 1), (step, key)
    decide = snapshots.load("decide_triggers", snaps[("decide_triggers", "0")], DecisionState, DecisionState(0, 1))
    assert decide.wall_ms is not None and decide.state.skus and decide.state.decided
    # The two fields of the legacy order ledger became the stock book's OrderLedger.
    ledger = decide.state.ledger
    assert ledger.orders and len(ledger.queue) == len(ledger.orders)
    assert all(type(e) is tuple and type(e[1]) is tuple for e in ledger.orders.values())


def test_a_legacy_monitor_moves_its_per_sku_charges_into_one_order_ledger(tmp_path: Path) -> None:
    snaps = legacy_snaps(tmp_path)
    orders = 0
    for (step, _key), data in snaps.items():
        if step != "monitor_skus":
            continue
        state = snapshots.load(step, data, MonitorState, MonitorState(0)).state
        assert {type(w) for w in state.skus.values()} == {SkuWatch}
        for _ts, charges, cancelled in state.ledger.orders.values():
            assert not cancelled and all(sku in state.skus for sku, _loc, _qty in charges)
        orders += len(state.ledger.orders)
    assert orders > 50


def test_a_store_of_the_development_format_3_is_refused_with_what_to_do() -> None:
    data = pickle.dumps((snapshots.MAGIC, 3, "monitor_skus", 1, MonitorState(0)))
    with pytest.raises(SnapshotError, match="format 3 .*new recovery store"):
        snapshots.load("monitor_skus", data, MonitorState, MonitorState(0))


def test_a_bare_legacy_decision_state_loads_as_format_1() -> None:
    st = DecisionState(0, 1)
    st.decided["t9"] = 1
    # Protocol 2 spells module paths as text: rewrite them as the legacy layout named them.
    legacy = pickle.dumps(st, protocol=2).replace(b"stockguard.state.", b"state.")
    assert b"stockguard" not in legacy
    snap = snapshots.load("decide_triggers", legacy, DecisionState, DecisionState(0, 1))
    assert snap.format == 1 and snap.wall_ms is None and snap.state.decided == {"t9": 1}


def test_a_snapshot_of_a_newer_format_is_refused_with_what_to_do() -> None:
    data = pickle.dumps((snapshots.MAGIC, snapshots.FORMAT + 1, "decide_triggers", 1, DecisionState(0, 1)))
    with pytest.raises(SnapshotError, match="newer stockguard.*new recovery store"):
        snapshots.load("decide_triggers", data, DecisionState, DecisionState(0, 1))


def test_a_snapshot_of_another_step_is_refused() -> None:
    data = snapshots.dump("watch_locations", SurgeState())
    with pytest.raises(SnapshotError, match="belongs to step 'watch_locations'"):
        snapshots.load("track_campaigns", data, CampaignState, CampaignState())


def test_a_state_of_another_type_is_refused() -> None:
    data = snapshots.dump("decide_triggers", SurgeState())
    with pytest.raises(SnapshotError, match="holds a SurgeState"):
        snapshots.load("decide_triggers", data, DecisionState, DecisionState(0, 1))


class _OldDecisionState(DecisionState):
    """Pickles (renamed below) as a DecisionState of the dict form older builds wrote."""

    def __getstate__(self) -> Any:
        names: tuple[str, ...] = ("index", "partitions", "skus", "groups", "customers", "wheel", "decided", "decided_q")
        names += ("retracted", "retracted_q", "ledger", "watermark", "next_sweep", "next_sku_sweep")
        d = dict(zip(names, super().__getstate__(), strict=True))
        del d["retracted_q"]
        return d


def test_a_state_missing_an_attribute_is_refused_not_half_loaded() -> None:
    envelope = (snapshots.MAGIC, snapshots.FORMAT, "decide_triggers", None, _OldDecisionState(0, 1))
    old = f"{__name__}\n_OldDecisionState\n".encode()
    data = pickle.dumps(envelope, protocol=2).replace(old, b"stockguard.state.decision\nDecisionState\n")
    with pytest.raises(SnapshotError, match="lacks retracted_q"):
        snapshots.load("decide_triggers", data, DecisionState, DecisionState(0, 1))


def test_a_truncated_snapshot_is_refused() -> None:
    data = snapshots.dump("decide_triggers", DecisionState(0, 1))
    with pytest.raises(SnapshotError, match="cannot be read"):
        snapshots.load("decide_triggers", data[: len(data) // 2], DecisionState, DecisionState(0, 1))


def test_a_function_reached_through_one_of_our_modules_is_refused_before_it_runs() -> None:
    # pickle's own GLOBAL opcode, by hand: "stockguard.state.snapshots" + "pickle.loads" would
    # resolve to the unrestricted loader, which could then run anything.
    for module, name in (("stockguard.state.snapshots", "pickle.loads"), ("stockguard.state.snapshots", "dump")):
        evil = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
        with pytest.raises(SnapshotError, match="which is not state of stockguard"):
            snapshots.load("decide_triggers", evil, DecisionState, DecisionState(0, 1))


def test_a_snapshot_naming_anything_but_our_state_is_refused_before_it_runs() -> None:
    # A tampered store must not get to call arbitrary functions while unpickling.
    evil = pickle.dumps((snapshots.MAGIC, snapshots.FORMAT, "decide_triggers", None, os.getcwd))
    with pytest.raises(SnapshotError, match="posix.getcwd, which is not state of stockguard"):
        snapshots.load("decide_triggers", evil, DecisionState, DecisionState(0, 1))
