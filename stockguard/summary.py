"""The summary table of a run (replay, demo): decisions, suppressions by reason, speed.

Its own module, so the demo and the CLI both use it without importing each other.
"""

from __future__ import annotations

import sys
from typing import TextIO

from stockguard.config.settings import Settings
from stockguard.connectors.files import OutputStats

__all__ = ["print_table", "summary_rows"]


def summary_rows(settings: Settings, stats: OutputStats, events: int, seconds: float) -> list[tuple[str, str]]:
    """Build the summary table of a run: decisions, suppressions by reason, DLQ, speed."""
    t = settings.topics
    rows = [("events read", f"{events:,}")]
    approved = stats.by_topic[t.approved]
    retarget = stats.by_label[(t.approved, "retarget")]
    rows.append(("triggers approved", f"{approved:,}"))
    rows.append(("  sent as asked", f"{approved - retarget:,}"))
    rows.append(("  re-targeted", f"{retarget:,}"))
    rows.append(("triggers suppressed", f"{stats.by_topic[t.suppressed]:,}"))
    reasons = sorted(
        ((label, n) for (topic, label), n in stats.by_label.items() if topic == t.suppressed),
        key=lambda x: (-x[1], x[0]),
    )
    rows.extend((f"  {label}", f"{n:,}") for label, n in reasons)
    rows.append(("triggers retracted", f"{stats.by_topic[t.retracted]:,}"))
    rows.append(("surge alerts", f"{stats.by_topic[t.surge_alerts]:,}"))
    rows.append(("merch insights", f"{stats.by_topic[t.insights]:,}"))
    rows.append(("dead letters (DLQ)", f"{stats.by_topic[t.dlq]:,}"))
    rows.append(("elapsed", f"{seconds:.2f} s"))
    rows.append(("throughput", f"{events / max(seconds, 1e-9):,.0f} events/s"))
    return rows


def print_table(rows: list[tuple[str, str]], stream: TextIO | None = None) -> None:
    """Print two columns, labels left, values right."""
    stream = stream or sys.stdout
    w1 = max(len(a) for a, _ in rows)
    w2 = max(len(b) for _, b in rows)
    for a, b in rows:
        stream.write(f"{a:<{w1}}  {b:>{w2}}\n")
    stream.flush()
