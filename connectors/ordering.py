"""Hand over messages of many partitions in timestamp order, the way Kafka Streams does.

Caught up, a source reads each message as it is produced, so the flow sees the stock,
order and trigger streams interleaved as they happened. Behind (after a restart, an
outage), each partition's backlog arrives in large fetches of its own, and a trigger
could be decided against stock read minutes ahead of it. The merger holds what was
fetched and hands over, in order of (timestamp, topic rank, partition), only messages no
older message can still arrive before: a lagging partition with nothing buffered bounds
the others by the timestamp of its last message. It waits at most `wait_s` for one, then
hands over what it holds, and no longer waits for that partition until it delivers again
(a partition can look behind for ever: transaction markers, a log whose start was
deleted), so a silent partition costs one wait, not one per batch. Each partition's own
order is always kept. Pure: no Kafka.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from stockguard.flows.records import RawRecord

__all__ = ["TimestampMerger"]

_NO_BOUND: Final = float("inf")


class TimestampMerger:
    """Buffer per partition and release messages in timestamp order."""

    def __init__(self, keys: Iterable[str], rank: Mapping[str, int], wait_s: float, cap: int) -> None:
        self.keys = list(keys)
        self.rank = dict(rank)
        self.wait_s = wait_s
        self.cap = cap
        # key -> buffered (timestamp, rank, partition, offset, record), in partition order.
        self.buffers: dict[str, deque[tuple[int, int, int, int, RawRecord]]] = {k: deque() for k in self.keys}
        # key -> timestamp of the last message fetched (its next one is not older).
        self.last_ts: dict[str, int] = {}
        self.blocked_since: float | None = None
        # Partitions that made us wait `wait_s` in vain: not waited for until they deliver.
        self.ignored: set[str] = set()
        self.held = 0

    def add(self, key: str, rec: RawRecord) -> None:
        """Buffer one fetched message of partition `key`."""
        ts = rec.timestamp if rec.timestamp is not None else self.last_ts.get(key, 0)
        self.last_ts[key] = ts
        self.ignored.discard(key)
        self.buffers[key].append((ts, self.rank.get(rec.topic, 99), rec.partition, rec.offset, rec))
        self.held += 1

    def full(self, key: str) -> bool:
        """Tell whether a partition holds as many messages as it may (pause it)."""
        return len(self.buffers[key]) >= self.cap

    def take(self, lagging: Callable[[str], bool], now: float) -> list[RawRecord]:
        """Return the messages that may go now, in order; `lagging(key)`: more to fetch."""
        if not self.held:
            self.blocked_since = None
            return []
        blockers = [key for key, buf in self.buffers.items() if not buf and key not in self.ignored and lagging(key)]
        bound = _NO_BOUND
        if blockers:
            if self.blocked_since is None:
                self.blocked_since = now
            if now - self.blocked_since >= self.wait_s:
                # Waited long enough: a silent partition must not stall the others again.
                self.ignored.update(blockers)
                self.blocked_since = None
            else:
                # Their next messages are at least as young as their last ones (or unknown: -1).
                bound = min(self.last_ts.get(key, -1) for key in blockers)
        else:
            self.blocked_since = None
        ready: list[list[tuple[int, int, int, int, RawRecord]]] = []
        for buf in self.buffers.values():
            if not buf:
                continue
            if bound == _NO_BOUND:
                ready.append(list(buf))
                buf.clear()
                continue
            part = []
            while buf and buf[0][0] <= bound:
                part.append(buf.popleft())
            if part:
                ready.append(part)
        if not ready:
            return []
        n = sum(len(r) for r in ready)
        self.held -= n
        if len(ready) == 1:
            return [item[4] for item in ready[0]]
        # Each partition's list keeps its order; merge only interleaves them.
        return [item[4] for item in heapq.merge(*ready, key=lambda x: (x[0], x[1], x[2]))]
