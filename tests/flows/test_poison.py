"""Nothing a producer can send stops the flow: limits, encode guards, per-record failures."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockguard.config.settings import DlqSettings, KafkaSettings, Settings
from stockguard.connectors.files import parse_replay_line
from stockguard.flows.dataflow import build_flow
from stockguard.flows.logics import DecideLogic
from stockguard.flows.records import OutRecord, RawRecord
from stockguard.flows.routing import ToDecision
from stockguard.state.decision import Decider
from stockguard.state.inventory import SENT_STRIDE
from stockguard.state.journal import PartitionJournal, Recorded
from tests.helpers import MIN, T0, level, product, trigger

S = Settings()
TP = S.topics


def raw(topic: str, value: Any, key: str | None = None, offset: int = 0) -> RawRecord:
    data = value if isinstance(value, bytes) else orjson.dumps(value)
    return RawRecord(topic, key.encode() if key else None, data, 0, offset)


def run(records: list[RawRecord], settings: Settings = S) -> list[OutRecord]:
    out: list[OutRecord] = []
    run_main(build_flow(settings, {"test": TestingSource(records)}, {"test": TestingSink(out)}, clock=lambda: 7))  # type: ignore[no-untyped-call]
    return out


def dlq(out: list[OutRecord]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in out if r.topic == TP.dlq]


def deep(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = {"x": v}
    return v


def test_a_trigger_nested_300_deep_is_dead_lettered_and_the_next_one_decided() -> None:
    bad = trigger("t1", "c1", ["A"])
    bad["extra"] = deep(300)
    # orjson writes 254 levels at most: build the bytes by hand.
    data = orjson.dumps(trigger("t1", "c1", ["A"]))[:-1] + b',"extra":' + b'{"x":' * 300 + b"1" + b"}" * 300 + b"}"
    out = run([raw(TP.triggers, data, "c1", 1), raw(TP.triggers, trigger("t2", "c2", ["A"]), "c2", 2)])
    (d,) = dlq(out)
    assert d["offset"] == 1 and "input.max_json_depth" in d["error"]
    assert [orjson.loads(r.value)["trigger_id"] for r in out if r.topic == TP.approved] == ["t2"]


def test_a_message_over_the_size_limit_is_dead_lettered_with_raw_cut_and_its_size() -> None:
    big = b'{"pad": "' + b"x" * 5_000_000 + b'"}'
    out = run([raw(TP.orders, big, "o1", 3)])
    (d,) = dlq(out)
    assert "input.max_message_bytes" in d["error"]
    assert d["raw_truncated"] is True and d["raw_bytes"] == len(big)
    assert len(d["raw"]) == S.dlq.max_raw_bytes


def test_a_trigger_whose_decision_could_not_fit_a_kafka_message_is_refused_at_input() -> None:
    s = dataclasses.replace(S, kafka=KafkaSettings(max_message_bytes=20_000))
    t = trigger("t1", "c1", ["A"])
    t["note"] = "y" * 15_000  # under the input limit, over half the output limit
    out = run([raw(TP.triggers, t, "c1")], s)
    (d,) = dlq(out)
    assert "half of kafka.max_message_bytes" in d["error"]
    assert not [r for r in out if r.topic == TP.approved]


def test_an_output_too_large_for_kafka_goes_to_the_dlq_not_the_sink() -> None:
    s = dataclasses.replace(S, kafka=KafkaSettings(max_message_bytes=3_000), dlq=DlqSettings(max_raw_bytes=100))
    # Many substitutions make the decision larger than the trigger.
    records = [raw(TP.products, product("A", substitutes=[f"S{i:04d}" for i in range(200)]))]
    records.append(raw(TP.stock, level("A", 0)))
    t = trigger("t1", "c1", ["A"] + [f"Z{i:03d}" for i in range(150)])
    records.append(raw(TP.triggers, t, "c1"))
    out = run(records, s)
    assert not [r for r in out if r.topic in (TP.approved, TP.suppressed)]
    (d,) = dlq(out)
    assert d["topic"] in (TP.approved, TP.suppressed) and d["error"].startswith("output:")
    assert d["raw_truncated"] is True and len(d["raw"]) == 100
    assert all(len(r.value) <= 3_000 for r in out)


class FlakyDecider:
    """A Decider that fails on trigger "boom" (a wrapper: a compiled class cannot be patched)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inner = Decider(*args, **kwargs)

    def on_trigger(self, t: Any, out: list[Any]) -> None:
        if t.trigger_id == "boom":
            raise ValueError("a bug")
        self.inner.on_trigger(t, out)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_exception_on_one_trigger_dead_letters_that_trigger_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stockguard.flows.logics.Decider", FlakyDecider)
    out = run(
        [raw(TP.triggers, trigger("boom", "c1", ["A"]), "c1"), raw(TP.triggers, trigger("ok", "c2", ["A"]), "c2")]
    )
    (d,) = dlq(out)
    assert d["topic"] == "stockguard:decide_triggers" and "ValueError" in d["error"]
    assert [orjson.loads(r.value)["trigger_id"] for r in out if r.topic == TP.approved] == ["ok"]


def test_a_replay_line_nested_too_deep_is_framed_as_an_error() -> None:
    line = b'{"topic": "marketing.triggers", "value": ' + b"[" * 100 + b"]" * 100 + b"}"
    rec = parse_replay_line(line, 4)
    assert rec is not None and rec.error is not None and "max_json_depth" in rec.error


def test_a_re_read_trigger_adopts_its_journaled_decision_through_the_logic() -> None:
    j = PartitionJournal()
    j.add_decision(f"{TP.triggers}/0/2", Recorded(True, ("B",)))
    j.add_retraction("t-old", T0)
    asked: list[tuple[int, int | None]] = []

    def journal(index: int, since: int | None) -> PartitionJournal:
        asked.append((index, since))
        return j

    s = S.with_workers(1)
    logic = DecideLogic(s, lambda: 7, None, keep_snapshots=True, journal=journal)
    from stockguard.state.models import parse_product, parse_stock, parse_trigger

    items = [
        ToDecision(0, parse_product(product("A"))),
        ToDecision(0, parse_stock(level("A", 5))),
        ToDecision(0, parse_trigger(trigger("t1", "c1", ["A"], ts=T0 + MIN)), None, f"{TP.triggers}/0/2"),
        ToDecision(0, parse_trigger(trigger("t2", "c2", ["A"], ts=T0 + MIN)), 99, f"{TP.triggers}/0/3"),
    ]
    out, _ = logic.on_batch(items)
    recs = [r for r in out if isinstance(r, OutRecord)]
    # t1 took the recorded retarget to B: no message; t2 was decided and carries its position.
    assert [(r.topic, orjson.loads(r.value)["trigger_id"], r.source) for r in recs] == [
        (TP.approved, "t2", f"{TP.triggers}/0/3")
    ]
    assert recs[0].source_ts == 99
    assert asked == [(0, None)]
    st_ = logic.decider.state if logic.decider else None
    assert st_ is not None and "t1" in st_.decided and "t-old" in st_.retracted
    assert st_.skus["B"].sent[1::SENT_STRIDE] == ["t1"]
    # A snapshot is a versioned envelope with its wall time; it resumes.
    snap = logic.snapshot()
    assert snap is not None
    resumed = DecideLogic(s, lambda: 7, snap, keep_snapshots=True, journal=journal)
    assert resumed.decider is not None and "t1" in resumed.decider.state.decided
    assert asked[-1][1] is not None


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid messages with one field replaced, dropped or added, plus arbitrary JSON."""
    keys = sorted(base)
    replace = st.tuples(st.sampled_from(keys), _json).map(lambda kv: {**base, kv[0]: kv[1]})
    drop = st.sampled_from(keys).map(lambda k: {x: v for x, v in base.items() if x != k})
    add = st.tuples(st.text(max_size=6), _json).map(lambda kv: {**base, kv[0]: kv[1]})
    return replace | drop | add | _json


_BASES = {
    TP.triggers: trigger("t1", "c1", ["A"]),
    TP.stock: level("A", 3),
    TP.products: product("A"),
    TP.orders: {
        "event_id": "e",
        "ts": T0,
        "order_id": "o",
        "status": "placed",
        "customer_id": "c",
        "lines": [{"sku": "A", "qty": 1, "unit_price": 2.0}],
    },
    TP.clickstream: {
        "event_id": "e",
        "ts": T0,
        "customer_id": "c",
        "session_id": "s",
        "type": "product_view",
        "sku": "A",
    },
    TP.campaigns: {"campaign_id": "cm", "ts": T0, "name": "n", "start_ts": T0, "end_ts": T0 + 1, "media_cost": 1.0},
}

_value = st.one_of(
    *(st.tuples(st.just(topic), _mutated(base).map(orjson.dumps)) for topic, base in _BASES.items()),
    st.tuples(st.sampled_from(sorted(_BASES)), st.binary(max_size=40)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_value, min_size=1, max_size=25))
def test_no_input_on_any_topic_crashes_the_flow_and_every_trigger_is_accounted(msgs: list[tuple[str, bytes]]) -> None:
    records = [RawRecord(topic, b"k", data, 0, i) for i, (topic, data) in enumerate(msgs)]
    out = run(records)
    triggers = {i for i, (topic, _d) in enumerate(msgs) if topic == TP.triggers}
    dead = {d["offset"] for d in dlq(out) if d["topic"] == TP.triggers}
    decided = [r for r in out if r.topic in (TP.approved, TP.suppressed)]
    # Every trigger read ends in exactly one of approved, suppressed or the DLQ.
    assert len(decided) + len(dead) == len(triggers)
    for r in out:
        orjson.loads(r.value)
