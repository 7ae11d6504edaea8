"""Which Kafka offsets a deliverer may commit: only past messages fully handled.

A message is handled when the vendor accepted it, it went to the delivery DLQ, or it
needed no request. Messages of one partition finish out of order (requests run
concurrently, a retraction waits for its approval), so the committable offset of a
partition is one past the longest prefix of handled offsets: a crash then redelivers
everything not yet handled, and the vendor's dedup key or our delivered-ids record
makes the repeat harmless.
"""

from __future__ import annotations

from collections import deque

__all__ = ["OffsetTracker"]

TopicPartition = tuple[str, int]


class OffsetTracker:
    """Track taken and handled offsets per partition; say what may be committed."""

    def __init__(self) -> None:
        # Offsets taken, in order, per partition; handled ones are marked until they reach the head.
        self._taken: dict[TopicPartition, deque[int]] = {}
        self._handled: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def take(self, tp: TopicPartition, offset: int) -> None:
        """Note a message read from Kafka (offsets of a partition arrive in order)."""
        self._taken.setdefault(tp, deque()).append(offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Note a message handled; advance its partition's prefix."""
        taken = self._taken.get(tp)
        if not taken:
            return
        handled = self._handled.setdefault(tp, set())
        handled.add(offset)
        while taken and taken[0] in handled:
            head = taken.popleft()
            handled.discard(head)
            self._next[tp] = head + 1

    def pending(self) -> int:
        """Return how many taken messages are not handled yet."""
        return sum(len(q) for q in self._taken.values())

    def committable(self) -> dict[TopicPartition, int]:
        """Return the offsets to commit now (next offset per partition), only those that moved."""
        out = {tp: n for tp, n in self._next.items() if self._committed.get(tp) != n}
        return out

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Note offsets Kafka took as committed."""
        self._committed.update(offsets)

    def forget(self, tps: list[TopicPartition]) -> None:
        """Drop partitions this consumer lost in a rebalance (their messages come again elsewhere)."""
        for tp in tps:
            self._taken.pop(tp, None)
            self._handled.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
