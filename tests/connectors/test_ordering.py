"""The timestamp merge of a source's partitions: backlogs come out in production order."""

from __future__ import annotations

from stockguard.connectors.ordering import TimestampMerger
from stockguard.flows.records import RawRecord

RANK = {"stock": 0, "triggers": 1}


def rec(topic: str, part: int, offset: int, ts: int) -> RawRecord:
    return RawRecord(topic, None, b"{}", part, offset, ts)


def keys() -> list[str]:
    return ["0-stock", "0-triggers"]


def test_two_backlogs_are_interleaved_by_timestamp_and_rank() -> None:
    m = TimestampMerger(keys(), RANK, wait_s=1.0, cap=100)
    for i, ts in enumerate((1, 3, 5)):
        m.add("0-stock", rec("stock", 0, i, ts))
    for i, ts in enumerate((2, 3, 6)):
        m.add("0-triggers", rec("triggers", 0, i, ts))
    got = m.take(lambda _k: False, now=0.0)
    assert [(r.topic, r.timestamp) for r in got] == [
        ("stock", 1),
        ("triggers", 2),
        ("stock", 3),  # same millisecond: stock ranks first
        ("triggers", 3),
        ("stock", 5),
        ("triggers", 6),
    ]
    assert m.held == 0


def test_a_lagging_empty_partition_holds_back_younger_messages_until_the_wait_ends() -> None:
    m = TimestampMerger(keys(), RANK, wait_s=0.5, cap=100)
    m.add("0-triggers", rec("triggers", 0, 0, 10))
    m.take(lambda _k: False, now=0.0)
    m.add("0-stock", rec("stock", 0, 0, 8))
    m.add("0-stock", rec("stock", 0, 1, 12))
    # Triggers lag with nothing buffered; their next is at least 10: only stock <= 10 goes.
    lagging = {"0-triggers"}
    got = m.take(lambda k: k in lagging, now=1.0)
    assert [r.timestamp for r in got] == [8]
    assert m.take(lambda k: k in lagging, now=1.2) == []
    # Waited long enough: hand over what is held.
    assert [r.timestamp for r in m.take(lambda k: k in lagging, now=1.6)] == [12]


def test_an_unknown_partition_blocks_everything_until_it_is_known_or_the_wait_ends() -> None:
    m = TimestampMerger(keys(), RANK, wait_s=0.5, cap=100)
    m.add("0-stock", rec("stock", 0, 0, 8))
    assert m.take(lambda k: k == "0-triggers", now=0.0) == []
    assert [r.timestamp for r in m.take(lambda _k: False, now=0.1)] == [8]


def test_a_partition_keeps_its_own_order_even_when_its_timestamps_do_not() -> None:
    m = TimestampMerger(keys(), RANK, wait_s=1.0, cap=100)
    m.add("0-stock", rec("stock", 0, 0, 5))
    m.add("0-stock", rec("stock", 0, 1, 2))
    m.add("0-triggers", rec("triggers", 0, 0, 3))
    got = m.take(lambda _k: False, now=0.0)
    stock = [r.offset for r in got if r.topic == "stock"]
    assert stock == [0, 1]


def test_full_tells_when_to_pause_a_partition() -> None:
    m = TimestampMerger(keys(), RANK, wait_s=1.0, cap=2)
    m.add("0-stock", rec("stock", 0, 0, 1))
    assert not m.full("0-stock")
    m.add("0-stock", rec("stock", 0, 1, 2))
    assert m.full("0-stock")


def test_a_partition_that_looks_behind_for_ever_costs_one_wait_not_one_per_batch() -> None:
    m = TimestampMerger(keys(), RANK, wait_s=0.5, cap=100)
    # Triggers look behind (a transaction marker past their last message) but never deliver.
    stuck = lambda k: k == "0-triggers"  # noqa: E731
    m.add("0-stock", rec("stock", 0, 0, 1))
    assert m.take(stuck, now=0.0) == []
    assert [r.offset for r in m.take(stuck, now=0.6)] == [0]
    m.add("0-stock", rec("stock", 0, 1, 2))
    assert [r.offset for r in m.take(stuck, now=0.7)] == [1]
    # Once it delivers again it is waited for again.
    m.add("0-triggers", rec("triggers", 0, 0, 3))
    assert [r.offset for r in m.take(stuck, now=0.8)] == [0]
    m.add("0-stock", rec("stock", 0, 2, 9))
    assert m.take(stuck, now=0.9) == []
