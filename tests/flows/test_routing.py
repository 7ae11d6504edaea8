"""The router's split: every routed item reaches exactly one downstream list, in order."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stockguard.config.settings import Settings
from stockguard.flows.records import OutRecord, RawRecord, StockView
from stockguard.flows.routing import (
    CAMPAIGNS_KEY,
    Router,
    ToDecision,
    pick_campaigns,
    pick_dead_letters,
    pick_decision_outputs,
    pick_decisions,
    pick_locations,
    pick_monitor_outputs,
    pick_monitors,
    pick_stock_views,
    split_routed,
)
from tests.helpers import level, product, trigger

# Two decision partitions: a stock event is broadcast to both.
S = dataclasses.replace(Settings(), decision_partitions=2).with_workers(1)
TP = S.topics


def raw(topic: str, value: Any, offset: int) -> RawRecord:
    return RawRecord(topic, None, value if isinstance(value, bytes) else orjson.dumps(value), 0, offset)


RECORDS = [
    lambda i: raw(TP.triggers, trigger(f"t{i}", f"c{i}", ["A"]), i),
    lambda i: raw(TP.stock, level("A", 5), i),
    lambda i: raw(TP.products, product("A"), i),
    lambda i: raw(TP.triggers, b"{not json", i),
    lambda i: raw("no.such.topic", b"{}", i),
    lambda i: raw(TP.campaigns, {"campaign_id": f"cm{i}"}, i),
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(RECORDS) - 1), max_size=40))
def test_the_split_is_the_routed_items_each_in_one_list_in_order(kinds: list[int]) -> None:
    router = Router(S, lambda: 7)
    recs = [RECORDS[k](i) for i, k in enumerate(kinds)]
    routed = router.route_batch(recs)
    (split,) = router.split_batch(recs)
    dead, campaigns, monitors, decisions = split
    assert dead == [x for x in routed if isinstance(x, OutRecord)]
    assert campaigns == [x for x in routed if not isinstance(x, OutRecord) and x[0] == CAMPAIGNS_KEY]
    assert decisions == [x for x in routed if not isinstance(x, OutRecord) and type(x[1]) is ToDecision]
    assert all(k.startswith("m") and type(v) is not ToDecision for k, v in monitors)
    assert len(dead) + len(campaigns) + len(monitors) + len(decisions) == len(routed)
    # Two batches picked at once give the concatenation, in batch order.
    assert pick_dead_letters([split, split]) == dead + dead
    assert pick_campaigns([split]) == campaigns
    assert pick_monitors([split, split]) == monitors + monitors
    assert pick_decisions([split]) == decisions


def test_the_picks_after_a_stateful_step_drop_keys_and_keep_one_kind_each() -> None:
    rec = OutRecord("t", "k", b"{}")
    view = StockView("A", {"atp": 1})
    other = object()
    batch: list[tuple[str, Any]] = [("0", rec), ("1", view), ("0", other)]
    assert pick_decision_outputs(batch) == [rec, other]
    assert pick_stock_views(batch) == [view]
    assert pick_monitor_outputs(batch) == [rec]
    assert pick_locations(batch) == [("locations", view), ("locations", other)]
    assert split_routed([]) == ([], [], [], [])
