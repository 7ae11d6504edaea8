"""The fault suite's ledger: every count from small hand-made records."""

from __future__ import annotations

from typing import Any

from bench.faults.ledger import build_ledger


def send(tid: str, skus: list[str], decided_ts: int = 1) -> tuple[str, dict[str, Any]]:
    return ("approved", {"trigger_id": tid, "decision": "send", "skus": skus, "decided_ts": decided_ts})


def sup(tid: str, reason: str) -> tuple[str, dict[str, Any]]:
    return ("suppressed", {"trigger_id": tid, "decision": "suppress", "reason": reason, "decided_ts": 1})


def ret(tid: str) -> tuple[str, dict[str, Any]]:
    return ("retracted", {"trigger_id": tid, "sku": "A"})


def test_a_run_equal_to_the_replay_is_ok_whatever_the_decision_times() -> None:
    replay = [send("t1", ["A"]), sup("t2", "no_consent"), ret("t1")]
    live = [send("t1", ["A"], decided_ts=99), sup("t2", "no_consent"), ret("t1")]
    led = build_ledger(["t1", "t2"], replay, live)
    assert led.ok and led.equal_to_replay == 2 and led.decided == 2


def test_every_failure_is_counted() -> None:
    replay = [send("t1", ["A"]), send("t2", ["A"]), send("t3", ["A"]), send("t4", ["A"]), ret("t4"), sup("t5", "x")]
    live = [
        send("t2", ["A"]),
        send("t2", ["A"], decided_ts=5),  # identical duplicate
        send("t3", ["A"]),
        send("t3", ["B"]),  # conflicting duplicate
        send("t4", ["A"]),  # its retraction is missing
        sup("t5", "x"),
        ret("t5"),  # a retraction the replay did not send
        send("t9", ["A"]),  # not one of the day's triggers
    ]
    led = build_ledger(["t1", "t2", "t3", "t4", "t5"], replay, live)
    assert led.lost == ["t1"]
    assert led.identical_duplicates == 1
    assert led.conflicting_duplicates == ["t3"]
    assert led.missing_retractions == ["t4"]
    assert led.extra_retractions == ["t5"]
    assert led.differ_from_replay == ["t3"] and led.examples
    assert led.equal_to_replay == 3 and not led.ok
    assert "lost 1" in led.format() and "conflicting duplicates 1" in led.format()


def test_duplicate_retractions_are_counted() -> None:
    replay = [send("t1", ["A"]), ret("t1")]
    led = build_ledger(["t1"], replay, [send("t1", ["A"]), ret("t1"), ret("t1")])
    assert led.duplicate_retractions == 1 and led.ok
