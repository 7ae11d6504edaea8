"""The ledger of a fault run: every trigger's live decisions against the replay's (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

Record = tuple[str, dict[str, Any]]  # (kind: approved|suppressed|retracted, message)


def _decision(msg: dict[str, Any]) -> bytes:
    """Return a decision without its wall-clock stamp, comparable byte for byte."""
    return orjson.dumps({k: v for k, v in msg.items() if k != "decided_ts"}, option=orjson.OPT_SORT_KEYS)


@dataclass
class Ledger:
    """Count what a fault run did to each trigger, against the replay of the same input."""

    triggers: int = 0
    decided: int = 0
    lost: list[str] = field(default_factory=list)
    identical_duplicates: int = 0
    conflicting_duplicates: list[str] = field(default_factory=list)
    missing_retractions: list[str] = field(default_factory=list)
    extra_retractions: list[str] = field(default_factory=list)
    duplicate_retractions: int = 0
    equal_to_replay: int = 0
    differ_from_replay: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether the run met every target."""
        return not (self.lost or self.conflicting_duplicates or self.missing_retractions or self.differ_from_replay)

    def format(self) -> str:
        """Return one line of figures."""
        return (
            f"triggers {self.triggers:,}, decided {self.decided:,}, lost {len(self.lost)}, "
            f"identical duplicates {self.identical_duplicates}, conflicting duplicates "
            f"{len(self.conflicting_duplicates)}, missing retractions {len(self.missing_retractions)}, "
            f"extra retractions {len(self.extra_retractions)}, equal to replay "
            f"{self.equal_to_replay:,}/{self.triggers:,}"
        )


def build_ledger(trigger_ids: Iterable[str], replay: list[Record], live: list[Record]) -> Ledger:
    """Compare the live run's records with the replay's, trigger by trigger."""
    ids = set(trigger_ids)
    expected: dict[str, bytes] = {}
    expected_retracted: set[str] = set()
    for kind, msg in replay:
        tid = msg.get("trigger_id")
        if tid not in ids:
            continue
        if kind == "retracted":
            expected_retracted.add(tid)
        else:
            expected.setdefault(tid, _decision(msg))
    got: dict[str, list[bytes]] = {}
    retracted: dict[str, int] = {}
    for kind, msg in live:
        tid = msg.get("trigger_id")
        if tid not in ids:
            continue
        if kind == "retracted":
            retracted[tid] = retracted.get(tid, 0) + 1
        else:
            got.setdefault(tid, []).append(_decision(msg))
    led = Ledger(triggers=len(expected))
    for tid in sorted(expected):
        decisions = got.get(tid)
        if not decisions:
            led.lost.append(tid)
            continue
        led.decided += 1
        distinct = set(decisions)
        if len(decisions) > 1:
            if len(distinct) == 1:
                led.identical_duplicates += len(decisions) - 1
            else:
                led.conflicting_duplicates.append(tid)
        if distinct == {expected[tid]}:
            led.equal_to_replay += 1
            if tid in expected_retracted and tid not in retracted:
                led.missing_retractions.append(tid)
            if tid not in expected_retracted and tid in retracted:
                led.extra_retractions.append(tid)
        else:
            led.differ_from_replay.append(tid)
            if len(led.examples) < 3:
                live_one = sorted(distinct)[0].decode()
                led.examples.append(f"{tid}: replay {expected[tid].decode()} / live {live_one}")
    led.duplicate_retractions = sum(n - 1 for n in retracted.values() if n > 1)
    return led
