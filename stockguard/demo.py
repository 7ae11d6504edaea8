"""`stockguard demo`: a compressed Cyber Monday through the real dataflow, no broker."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from stockguard.config.settings import Settings
from stockguard.connectors.files import JsonlSink, OutputStats, write_replay
from stockguard.connectors.metrics import CampaignGauges
from stockguard.flows.dataflow import build_flow
from stockguard.flows.records import RawRecord
from stockguard.flows.runner import run_local
from stockguard.sim import SimConfig, simulate
from stockguard.summary import print_table, summary_rows

__all__ = ["PacedSimSource", "run_demo"]


@dataclass
class SimProgress:
    """What the paced source has emitted so far, for the live summary."""

    events: int = 0
    sim_ts: int = 0


def to_raw(topic: str, key: str | None, value: Any, offset: int) -> RawRecord:
    """Frame one simulated message as the raw record a broker would deliver."""
    key_b = key.encode() if key is not None else None
    if isinstance(value, str):
        return RawRecord(topic, key_b, value.encode(), 0, offset)
    return RawRecord(topic, key_b, None, 0, offset, decoded=value)


class _PacedPartition(StatefulSourcePartition[RawRecord, int]):
    def __init__(self, cfg: SimConfig, speed: float, resume: int | None, progress: SimProgress) -> None:
        self._events: Iterator[tuple[str, str | None, Any]] = simulate(cfg)
        self._offset = 0
        # Replays the generator up to the resume point: it is deterministic for a seed.
        for _ in range(resume or 0):
            next(self._events, None)
            self._offset += 1
        self._speed = speed
        self._t0_sim = cfg.start_ts
        self._t0_wall = time.monotonic()
        self._pending: tuple[str, str | None, Any] | None = next(self._events, None)
        self._progress = progress

    def _due(self, ts: int) -> float:
        return self._t0_wall + (ts - self._t0_sim) / 1000 / self._speed

    def next_batch(self) -> list[RawRecord]:
        if self._pending is None:
            raise StopIteration
        now = time.monotonic()
        out: list[RawRecord] = []
        while self._pending is not None and len(out) < 5000:
            topic, key, value = self._pending
            ts = value.get("ts", self._progress.sim_ts) if isinstance(value, dict) else self._progress.sim_ts
            if not isinstance(ts, int):
                ts = self._progress.sim_ts
            if self._due(ts) > now:
                break
            out.append(to_raw(topic, key, value, self._offset))
            self._offset += 1
            self._progress.sim_ts = max(self._progress.sim_ts, ts)
            self._pending = next(self._events, None)
        self._progress.events += len(out)
        return out

    def next_awake(self) -> datetime | None:
        if self._pending is None:
            return None
        value = self._pending[2]
        ts = value.get("ts") if isinstance(value, dict) else None
        if not isinstance(ts, int):
            return None
        wait = self._due(ts) - time.monotonic()
        if wait <= 0:
            return None
        return datetime.now(UTC) + timedelta(seconds=min(wait, 0.05))

    def snapshot(self) -> int:
        return self._offset


class PacedSimSource(FixedPartitionedSource[RawRecord, int]):
    """Emit the simulator's day at `speed` times real time."""

    def __init__(self, cfg: SimConfig, speed: float, progress: SimProgress) -> None:
        self.cfg = cfg
        self.speed = speed
        self.progress = progress

    def list_parts(self) -> list[str]:
        """List the single partition."""
        return ["sim"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PacedPartition:
        """Start (or resume) the simulated day."""
        return _PacedPartition(self.cfg, self.speed, resume_state, self.progress)


class LiveStats(OutputStats):
    """Count outputs and print one status line every `every` seconds."""

    def __init__(self, settings: Settings, progress: SimProgress, stream: TextIO, every: float = 2.0) -> None:
        super().__init__()
        self.settings = settings
        self.progress = progress
        self.stream = stream
        self.every = every
        self.last = time.monotonic()

    def add(self, items: list[Any]) -> None:
        """Count a batch, print surge alerts as they come, and a status line when due."""
        super().add(items)
        surge_topic = self.settings.topics.surge_alerts
        for r in items:
            if r.topic == surge_topic and r.label.startswith("order_surge"):
                self.print_alert(orjson.loads(r.value))
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.print_line()

    def print_alert(self, a: dict[str, Any]) -> None:
        """Print one order-surge alert the way the warehouse would read it."""
        when = datetime.fromtimestamp(a["ts"] / 1000, UTC).strftime("%a %H:%M")
        campaigns = ", ".join(a["campaign_ids"]) or "no campaign"
        self.stream.write(
            f"[{when}] ALERT order_surge {a['status']} at {a['location']}: {a['units_per_min']:g} units/min, "
            f"{a['ratio']:g}x the baseline {a['baseline_units_per_min']:g}; {a['campaign_share']:.0%} from "
            f"{campaigns}; recommended extra staff {a['recommended_extra_staff']}\n"
        )
        self.stream.flush()

    def print_line(self) -> None:
        """Print the running totals with the simulated time of day."""
        t = self.settings.topics
        sim = datetime.fromtimestamp(self.progress.sim_ts / 1000, UTC).strftime("%a %H:%M")
        retarget = self.by_label[(t.approved, "retarget")]
        oos = self.by_label[(t.suppressed, "out_of_stock")]
        self.stream.write(
            f"[{sim}] events {self.progress.events:>8,} | approved {self.by_topic[t.approved]:>6,}"
            f" (re-targeted {retarget:,}) | suppressed {self.by_topic[t.suppressed]:>6,}"
            f" (out of stock {oos:,}) | retracted {self.by_topic[t.retracted]:>4,}"
            f" | surge alerts {self.by_topic[t.surge_alerts]:>3,} | DLQ {self.by_topic[t.dlq]:>4,}\n"
        )
        self.stream.flush()


def run_demo(
    settings: Settings,
    seed: int = 42,
    speed: float = 1440.0,
    out_dir: str | Path = "out/demo",
    hours: float = 24.0,
    stream: TextIO = sys.stdout,
) -> int:
    """Simulate the day through the dataflow, printing a live summary, then a table."""
    if speed <= 0:
        stream.write("stockguard demo: --speed must be positive\n")
        return 2
    cfg = SimConfig(seed=seed, hours=hours)
    progress = SimProgress()
    stats = LiveStats(settings, progress, stream)
    stream.write(
        f"stockguard demo: {hours:g} h of Cyber Monday (seed {seed}) at {speed:g}x, "
        f"about {hours * 3600 / speed:.0f} s; outputs in {out_dir}/\n"
    )
    gauges = CampaignGauges()
    flow = build_flow(
        settings,
        {"sim": PacedSimSource(cfg, speed, progress)},
        {"files": JsonlSink(out_dir, stats)},
        views=[gauges],
    )
    start = time.monotonic()
    # Short epochs: the demo is about watching decisions arrive.
    run_local(flow, epoch_ms=1000)
    stats.print_line()
    print_table(summary_rows(settings, stats, progress.events, time.monotonic() - start), stream)
    for view in sorted(gauges.latest.values(), key=lambda v: -v["revenue"]):
        stream.write(
            f"campaign {view['campaign_id']}: {view['orders']:,} orders, {view['units']:,} units, "
            f"revenue {view['revenue']:,.2f}, gross margin {view['gross_margin']:,.2f}, "
            f"media cost {view['media_cost']:,.2f}\n"
        )
    approved = Path(out_dir) / f"{settings.topics.approved}.jsonl"
    if approved.exists():
        for line in approved.read_bytes().splitlines():
            msg = orjson.loads(line)
            if msg.get("decision") == "retarget":
                sub = msg["substitutions"][0]
                stream.write(
                    f"example re-target: trigger {msg['trigger_id']} ({msg['kind']}) "
                    f"{sub['from']} -> {sub['to']} ({sub['reason']})\n"
                )
                break
    # The day in pictures: the simulated input (for the campaign money) and the report.
    from stockguard.report import write_report

    day = Path(out_dir) / "input.replay"
    write_replay(day, list(simulate(cfg)))
    page = write_report(settings, Path(out_dir), Path(out_dir) / "report.html", day)
    stream.write(f"report: {Path(out_dir) / 'report.html'} ({len(page.hours)} hours)\n")
    return 0
