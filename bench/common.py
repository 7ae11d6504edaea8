"""What every benchmark shares: a producer that waits out a full queue, the closing table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(rows: list[tuple[str, str]], result: dict[str, Any], json_path: str | Path) -> None:
    """Print the rows as a two-column table and write the result as JSON."""
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{w}}  {b}")
    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def produce(producer: Any, topic: str, value: bytes, key: str | bytes | None, **kw: Any) -> None:
    """Produce one message, serving delivery reports while librdkafka's queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, **kw)
            return
        except BufferError:
            producer.poll(0.01)
