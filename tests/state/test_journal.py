"""The decision journal: a re-read trigger adopts its recorded decision and its effects."""

from __future__ import annotations

from typing import Any

from stockguard.config.settings import Settings
from stockguard.state.decision import RETRACTED, Emit
from stockguard.state.inventory import SENT_STRIDE
from stockguard.state.journal import PartitionJournal, Recorded, recorded_from_message
from stockguard.state.models import parse_trigger
from tests.helpers import MIN, T0, Harness, level, product, trigger


def adopt(h: Harness, msg: dict[str, Any], rec: Recorded) -> list[Emit]:
    out: list[Emit] = []
    h.decider.adopt(parse_trigger(msg), rec, out)
    return out


def test_messages_read_back_become_decisions() -> None:
    assert recorded_from_message({"decision": "retarget", "skus": ["B"]}) == Recorded(True, ("B",))
    assert recorded_from_message({"decision": "suppress", "reason": "no_consent"}) == Recorded(False, (), "no_consent")
    assert recorded_from_message({"decision": "send", "skus": "B"}) is None
    assert recorded_from_message([1]) is None


def test_take_pops_a_position_and_forgets_a_partition_once_passed() -> None:
    j = PartitionJournal()
    j.add_decision("t/0/5", Recorded(True, ("A",)))
    j.add_decision("t/0/9", Recorded(False, (), "duplicate"))
    j.add_decision("t/1/3", Recorded(True, ("B",)))
    assert j.take("t/0/4") is None and j.pending
    assert j.take("t/0/5") == Recorded(True, ("A",))
    # Offset 10 is past the last recorded one of t/0: the rest of t/0 can never match.
    assert j.take("t/0/10") is None
    assert "t/0" not in j.decisions and j.pending
    assert j.take("t/1/3") == Recorded(True, ("B",))
    assert not j.pending


def test_an_adopted_send_counts_against_the_cap_and_dedup_and_emits_nothing() -> None:
    h = Harness()
    h.product(product("A"))
    h.stock(level("A", 10))
    assert adopt(h, trigger("t1", "c1", ["A"], ts=T0 + MIN), Recorded(True, ("A",))) == []
    # Dedup: the same id again is a duplicate.
    assert h.trigger(trigger("t1", "c1", ["A"], ts=T0 + 2 * MIN))[2]["reason"] == "duplicate"
    # Cap: the adopted approval counts.
    assert h.trigger(trigger("t2", "c1", ["A"], ts=T0 + 3 * MIN))[2]["reason"] == "frequency_capped"
    # Budget and retraction list: the sku's sends hold the adopted one.
    s = h.decider.state.skus["A"]
    assert len(s.sends) == 1 and s.sent[1::SENT_STRIDE] == ["t1"]
    out = h.stock(level("A", 0, ts=T0 + 4 * MIN))
    assert [(k, m["trigger_id"]) for k, _c, m in out] == [(RETRACTED, "t1")]


def test_an_adopted_send_whose_sku_ran_out_since_is_retracted_at_once() -> None:
    h = Harness()
    h.product(product("A"))
    h.stock(level("A", 0))  # read before the trigger this time
    out = adopt(h, trigger("t1", "c1", ["A"], ts=T0 + MIN), Recorded(True, ("A",)))
    assert [(k, m["trigger_id"], m["detail"]) for k, _c, m in out] == [(RETRACTED, "t1", "ATP 0")]


def test_a_retraction_already_sent_is_not_sent_again() -> None:
    h = Harness()
    h.product(product("A"))
    h.stock(level("A", 5))
    h.decider.preload_retractions({"t1": T0 + 2 * MIN})
    assert adopt(h, trigger("t1", "c1", ["A"], ts=T0 + MIN), Recorded(True, ("A",))) == []
    assert h.stock(level("A", 0, ts=T0 + 3 * MIN)) == []


def test_an_adopted_suppression_only_remembers_the_id() -> None:
    h = Harness()
    assert adopt(h, trigger("t1", "c1", ["A"], consent=False), Recorded(False, (), "no_consent")) == []
    assert h.trigger(trigger("t1", "c1", ["A"]))[2]["reason"] == "duplicate"
    # The customer's cap is untouched.
    assert h.trigger(trigger("t2", "c1", ["A"]))[2]["decision"] == "send"


def test_an_adopted_back_in_stock_send_does_not_count_against_the_cap() -> None:
    h = Harness(rules=Settings().rules)
    adopt(h, trigger("t1", "c1", ["A"], kind="back_in_stock"), Recorded(True, ("A",)))
    assert h.trigger(trigger("t2", "c1", ["A"]))[2]["decision"] == "send"
