"""The decision journal: what a decision partition emitted before a restart.

A decision, once on a topic, is a fact: the email platform may already have sent it. After
a crash the flow resumes from its last snapshot and reads again the triggers it had
decided since. Those triggers must not be decided again (stock may be read in another
order this time, so the decision could differ); each adopts the decision recorded for its
position in the input instead, with every effect (dedup, cap, send budget, the list that
retractions are drawn from), and the retractions already sent are not sent again.

This module holds the journal of one partition, filled from our own output topics by a
connector (the way Kafka Streams restores a store from its changelog). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mypy_extensions import mypyc_attr

from stockguard.state.pickling import fields

__all__ = ["PartitionJournal", "Recorded", "recorded_from_message", "split_position"]


class Recorded(NamedTuple):
    """One decision as it was emitted: approved with its skus, or suppressed with a reason."""

    approved: bool
    skus: tuple[str, ...] = ()
    reason: str | None = None


def split_position(position: str) -> tuple[str, int]:
    """Split `topic/partition/offset` into (`topic/partition`, offset)."""
    source, _, offset = position.rpartition("/")
    return source, int(offset)


def recorded_from_message(msg: Any) -> Recorded | None:
    """Read an approved or suppressed message back as a decision; None if it is not one."""
    if type(msg) is not dict:
        return None
    decision = msg.get("decision")
    if decision in ("send", "retarget"):
        skus = msg.get("skus")
        if type(skus) is not list or not all(type(s) is str for s in skus):
            return None
        return Recorded(True, tuple(skus))
    if decision == "suppress":
        reason = msg.get("reason")
        return Recorded(False, (), reason if type(reason) is str else None)
    return None


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class PartitionJournal:
    """Hold the recorded decisions (by trigger position) and retractions of one partition."""

    __slots__ = ("decisions", "retracted", "top")

    def __init__(self) -> None:
        # "topic/partition" of the trigger -> offset -> the decision recorded for it.
        self.decisions: dict[str, dict[int, Recorded]] = {}
        # "topic/partition" -> highest recorded offset.
        self.top: dict[str, int] = {}
        # Trigger id -> event time of the retraction already sent.
        self.retracted: dict[str, int] = {}

    def __getstate__(self) -> tuple[object, ...]:
        return (self.decisions, self.top, self.retracted)

    def __setstate__(self, s: Any) -> None:
        self.decisions, self.top, self.retracted = fields(s, ("decisions", "top", "retracted"))

    def __len__(self) -> int:
        return sum(len(d) for d in self.decisions.values()) + len(self.retracted)

    def add_decision(self, position: str, rec: Recorded) -> None:
        """Record the decision emitted for the trigger at `position` (the first one wins)."""
        source, offset = split_position(position)
        self.decisions.setdefault(source, {}).setdefault(offset, rec)
        if offset > self.top.get(source, -1):
            self.top[source] = offset

    def add_retraction(self, trigger_id: str, ts: int) -> None:
        """Record a retraction already sent."""
        self.retracted.setdefault(trigger_id, ts)

    def take(self, position: str) -> Recorded | None:
        """Return and forget the decision recorded for a trigger position, if any.

        Offsets of one input partition only grow: once a trigger beyond the last recorded
        one is read, what is left of that partition's journal can never match (it was
        decided before the snapshot), so it is forgotten and the journal stays small.
        """
        source, offset = split_position(position)
        recorded = self.decisions.get(source)
        if recorded is None:
            return None
        rec = recorded.pop(offset, None)
        if not recorded or offset >= self.top[source]:
            del self.decisions[source]
            del self.top[source]
        return rec

    @property
    def pending(self) -> bool:
        """Tell whether any recorded decision may still be matched."""
        return bool(self.decisions)
