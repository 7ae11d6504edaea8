"""Offsets committed only past handled messages; stock coalesced and paced per interval."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stockguard.state.delivery.offsets import OffsetTracker
from stockguard.state.delivery.stock import StockSync

TP = ("marketing.triggers.approved", 0)


def test_a_partition_commits_only_its_handled_prefix() -> None:
    t = OffsetTracker()
    for o in range(5):
        t.take(TP, o)
    t.done(TP, 1)
    t.done(TP, 2)
    assert t.committable() == {}  # offset 0 still in flight
    t.done(TP, 0)
    assert t.committable() == {TP: 3}
    t.committed({TP: 3})
    assert t.committable() == {}
    t.done(TP, 4)
    assert t.committable() == {}
    t.done(TP, 3)
    assert t.committable() == {TP: 5}
    assert t.pending() == 0


def test_a_lost_partition_is_forgotten() -> None:
    t = OffsetTracker()
    t.take(TP, 7)
    t.forget([TP])
    t.done(TP, 7)
    assert t.committable() == {} and t.pending() == 0


@given(st.permutations(list(range(30))), st.integers(min_value=0, max_value=30))
def test_the_committed_offset_never_passes_an_unhandled_message(order: list[int], n_done: int) -> None:
    t = OffsetTracker()
    for o in range(30):
        t.take(TP, o)
    handled = set(order[:n_done])
    for o in order[:n_done]:
        t.done(TP, o)
    nxt = t.committable().get(TP, 0)
    assert all(o in handled for o in range(nxt))
    assert nxt == 30 or nxt not in handled


def test_stock_is_coalesced_per_sku_and_paced() -> None:
    s = StockSync(interval=60.0)
    s.add("A", 5, ("v", 0, 0))
    s.add("A", 3, ("v", 0, 1))
    s.add("B", -2, ("v", 1, 0))
    push = s.due(0.0)
    assert push is not None and push.atp == {"A": 3, "B": 0} and len(push.positions) == 3
    s.accepted(push)
    s.add("A", 4, ("v", 0, 2))
    assert s.due(30.0) is None and s.wait(30.0) == 30.0
    s.add("B", 0, ("v", 1, 1))  # unchanged since accepted: not sent again
    later = s.due(60.0)
    assert later is not None and later.atp == {"A": 4} and len(later.positions) == 2


def test_a_failed_push_comes_back_under_newer_views() -> None:
    s = StockSync(interval=1.0)
    s.add("A", 5, ("v", 0, 0))
    push = s.due(0.0)
    assert push is not None
    s.add("A", 9, ("v", 0, 1))
    s.failed(push)
    again = s.due(5.0)
    assert again is not None and again.atp == {"A": 9} and [p[2] for p in again.positions] == [0, 1]
