"""The send-time check's answers, from the decision messages the flow emits."""

from __future__ import annotations

from typing import Any

import pytest

from stockguard.state import sendtime

APPROVED = {
    "trigger_id": "t-1",
    "ts": 1764547561642,
    "campaign_id": "cm",
    "customer_id": "c-1",
    "kind": "cart_abandonment",
    "channel": "email",
    "skus": ["TEE-BLUE-M"],
    "consent": True,
    "decision": "retarget",
    "original_skus": ["TEE-RED-M"],
    "substitutions": [{"from": "TEE-RED-M", "to": "TEE-BLUE-M", "reason": "out_of_stock"}],
    "decided_ts": 1764547561700,
}


def _stored(kind: str, msg: dict[str, Any]) -> dict[bytes, bytes]:
    """The hash as Redis gives it back: bytes."""
    rec = sendtime.record_of(kind, msg)
    assert rec is not None
    return {k.encode(): v.encode() for k, v in rec[1].items()}


def test_an_approval_answers_its_decision_and_final_skus() -> None:
    assert sendtime.answer_of("t-1", _stored("approved", APPROVED)) == {
        "trigger_id": "t-1",
        "decision": "retarget",
        "skus": ["TEE-BLUE-M"],
        "reason": None,
    }


def test_a_suppression_answers_suppress_with_its_reason() -> None:
    msg = dict(APPROVED, decision="suppress", reason="frequency_capped")
    answer = sendtime.answer_of("t-1", _stored("suppressed", msg))
    assert (answer["decision"], answer["reason"]) == ("suppress", "frequency_capped")
    assert answer["decision"] not in sendtime.SENDABLE


def test_a_retraction_answers_retracted_with_the_sku_that_ran_out() -> None:
    msg = {"trigger_id": "t-1", "customer_id": "c-1", "campaign_id": "cm", "sku": "TEE-BLUE-M",
           "reason": "out_of_stock", "detail": "ATP 0", "ts": 1764550000000}  # fmt: skip
    assert sendtime.answer_of("t-1", _stored("retracted", msg)) == {
        "trigger_id": "t-1",
        "decision": "retracted",
        "skus": ["TEE-BLUE-M"],
        "reason": "out_of_stock: ATP 0",
    }


@pytest.mark.parametrize("fields", [{}, {b"decision": b"maybe"}, {"decision": "send", "skus": "not json"}])
def test_nothing_usable_stored_is_unknown_or_empty(fields: dict[Any, Any]) -> None:
    answer = sendtime.answer_of("t-9", fields)
    if fields.get("decision") == "send":
        assert answer["skus"] == [] and answer["decision"] == "send"
    else:
        assert answer == sendtime.unknown("t-9")
        assert answer["decision"] not in sendtime.SENDABLE


def test_messages_without_a_trigger_id_or_of_another_kind_store_nothing() -> None:
    assert sendtime.record_of("approved", {"decision": "send"}) is None
    assert sendtime.record_of("dlq", APPROVED) is None


def test_a_sku_row_has_numbers_and_locations() -> None:
    fields = {b"atp": b"12", b"available": b"1", b"known": b"1", b"units_per_day": b"3.5",
              b"updated_ts": b"1764547561642", b"loc:WH-PARIS": b"10", b"loc:WH-LYON": b"2"}  # fmt: skip
    assert sendtime.sku_row("TEE-RED-M", fields) == {
        "sku": "TEE-RED-M",
        "known": True,
        "available": True,
        "atp": 12,
        "units_per_day": 3.5,
        "updated_ts": 1764547561642,
        "locations": {"WH-LYON": 2, "WH-PARIS": 10},
    }
