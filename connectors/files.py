"""Replay files in, JSON-lines files out: the broker-free edges of the same dataflow.

A replay file holds one input message a line, in order:

    {"topic": "marketing.triggers", "key": "cust-1", "value": {...}}
    {"topic": "shop.orders", "raw": "not json"}

`raw` carries bytes as text, for bad input. A line that is not such a record still
reaches the dead-letter topic, with its line number as offset.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from stockguard.config.settings import InputSettings
from stockguard.flows.framing import REPLAY_TOPIC, parse_replay_line
from stockguard.flows.records import OutRecord, RawRecord

__all__ = ["REPLAY_TOPIC", "JsonlSink", "OutputStats", "ReplaySource", "parse_replay_line"]

_LIMITS = InputSettings()


class _ReplayPartition(StatefulSourcePartition[RawRecord, tuple[int, int]]):
    def __init__(
        self,
        path: Path,
        resume: tuple[int, int] | None,
        batch_size: int,
        progress: Callable[[int, int, int], None] | None,
        limits: InputSettings,
    ) -> None:
        self._limits = limits
        self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._size = os.fstat(self._fh.fileno()).st_size
        self._pos, self._line = resume if resume is not None else (0, 0)
        self._fh.seek(self._pos)
        self._batch = batch_size
        self._progress = progress

    def next_batch(self) -> list[RawRecord]:
        out: list[RawRecord] = []
        readline = self._fh.readline
        for _ in range(self._batch):
            line = readline()
            if not line:
                break
            self._line += 1
            rec = parse_replay_line(line, self._line, self._limits)
            if rec is not None:
                out.append(rec)
        self._pos = self._fh.tell()
        if self._progress is not None:
            self._progress(self._pos, self._size, self._line)
        if not out and self._pos >= self._size:
            raise StopIteration
        return out

    def snapshot(self) -> tuple[int, int]:
        return (self._pos, self._line)

    def close(self) -> None:
        self._fh.close()


class ReplaySource(FixedPartitionedSource[RawRecord, tuple[int, int]]):
    """Read a replay file as one partition; resumes from a byte offset."""

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 1000,
        progress: Callable[[int, int, int], None] | None = None,
        limits: InputSettings = _LIMITS,
    ) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.progress = progress
        self.limits = limits

    def list_parts(self) -> list[str]:
        """List the single partition."""
        return [self.path.name]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None) -> _ReplayPartition:
        """Open the file at the resumed position."""
        return _ReplayPartition(self.path, resume_state, self.batch_size, self.progress, self.limits)


@dataclass
class OutputStats:
    """Count output messages by topic and label; shared by the sink and the caller."""

    by_topic: Counter[str] = field(default_factory=Counter)
    by_label: Counter[tuple[str, str]] = field(default_factory=Counter)
    first_write: float | None = None

    def add(self, items: list[OutRecord]) -> None:
        """Count a batch of output records."""
        if self.first_write is None:
            self.first_write = time.monotonic()
        for r in items:
            self.by_topic[r.topic] += 1
            self.by_label[(r.topic, r.label)] += 1


class _JsonlPartition(StatelessSinkPartition[OutRecord]):
    def __init__(self, out_dir: Path, stats: OutputStats | None, worker: int) -> None:
        self._dir = out_dir
        self._files: dict[str, BinaryIO] = {}
        self._stats = stats
        self._suffix = "" if worker == 0 else f".w{worker}"

    def _file(self, topic: str) -> BinaryIO:
        fh = self._files.get(topic)
        if fh is None:
            fh = self._files[topic] = open(self._dir / f"{topic}{self._suffix}.jsonl", "ab")  # noqa: SIM115
        return fh

    def write_batch(self, items: list[OutRecord]) -> None:
        by_topic: dict[str, list[bytes]] = {}
        for r in items:
            by_topic.setdefault(r.topic, []).append(r.value)
        for topic, values in by_topic.items():
            values.append(b"")
            self._file(topic).write(b"\n".join(values))
        if self._stats is not None:
            self._stats.add(items)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


class JsonlSink(DynamicSink[OutRecord]):
    """Write each output topic to `<topic>.jsonl` in a directory, one value a line."""

    def __init__(self, out_dir: str | Path, stats: OutputStats | None = None, truncate: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.stats = stats
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if truncate:
            for p in self.out_dir.glob("*.jsonl"):
                p.unlink()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonlPartition:
        """Open this worker's files lazily."""
        return _JsonlPartition(self.out_dir, self.stats, worker_index)


class CollectSink(DynamicSink[OutRecord]):
    """Keep output records in a list (demo and tests) and count them."""

    def __init__(self, stats: OutputStats | None = None, keep: bool = True) -> None:
        self.items: list[OutRecord] = []
        self.stats = stats
        self.keep = keep

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CollectPartition:
        """Share the list across workers of this process."""
        return _CollectPartition(self)


class _CollectPartition(StatelessSinkPartition[OutRecord]):
    def __init__(self, sink: CollectSink) -> None:
        self._sink = sink

    def write_batch(self, items: list[OutRecord]) -> None:
        if self._sink.keep:
            self._sink.items.extend(items)
        if self._sink.stats is not None:
            self._sink.stats.add(items)


def write_replay(path: str | Path, records: list[tuple[str, Any, Any]]) -> None:
    """Write (topic, key, value) records as a replay file; a str value is written as raw."""
    with open(path, "wb") as fh:
        for topic, key, value in records:
            if isinstance(value, str):
                line = {"topic": topic, "key": key, "raw": value}
            else:
                line = {"topic": topic, "key": key, "value": value}
            fh.write(orjson.dumps(line) + b"\n")
