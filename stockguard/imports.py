"""`stockguard import ga4`: a GA4 BigQuery export (JSON lines) to a replay file.

`bq extract --destination_format NEWLINE_DELIMITED_JSON` writes one export row a line
(INT64 columns as strings), possibly in several files and gzipped; the rows of a day are
in no particular order. Each row is mapped by `stockguard.state.vendors.ga4.export_row`
(one clickstream event per item, `purchase` a placed order); the messages are written in
event-time order (stable, so one event's items keep theirs) as replay lines
`{"topic", "key", "value"}` for `stockguard replay`. A row that cannot be mapped is not
dropped in silence: it goes to the rejects file with its file, line and reason, and the
counts are printed; event names we do not use are counted as skipped.
"""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stockguard.config.settings import Settings
from stockguard.state.limits import check_input
from stockguard.state.vendors import ga4
from stockguard.state.vendors.common import MappingError, validate

__all__ = ["ImportStats", "import_ga4"]


@dataclass
class ImportStats:
    """What an import read and wrote."""

    rows: int = 0
    skipped: int = 0
    rejected: int = 0
    written: Counter[str] = field(default_factory=Counter)


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _rows(paths: Sequence[Path]) -> Iterator[tuple[Path, int, bytes]]:
    for path in paths:
        with _open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield path, lineno, line.strip()


def import_ga4(settings: Settings, paths: Sequence[Path], out: Path, rejects: Path) -> ImportStats:
    """Map export rows to a replay file sorted by event time; unmappable rows to `rejects`."""
    stats = ImportStats()
    topics = {kind: getattr(settings.topics, kind) for kind in ("clickstream", "orders")}
    limits = settings.input
    mapped: list[tuple[int, int, bytes]] = []
    with rejects.open("wb") as bad:

        def reject(path: Path, lineno: int, reason: str, raw: bytes) -> None:
            stats.rejected += 1
            row: dict[str, Any] = {"file": path.name, "line": lineno, "reason": reason}
            row["raw"] = raw[: settings.dlq.max_raw_bytes].decode("utf-8", "replace")
            bad.write(orjson.dumps(row) + b"\n")

        for path, lineno, raw in _rows(paths):
            stats.rows += 1
            refused = check_input(raw, limits.max_message_bytes, limits.max_json_depth)
            if refused is not None:
                reject(path, lineno, refused, raw)
                continue
            try:
                result = ga4.export_row(orjson.loads(raw), settings.ga4.sku_field)
                for o in result.outs:
                    validate(o)
            except orjson.JSONDecodeError as exc:
                reject(path, lineno, f"not JSON ({exc})", raw)
                continue
            except MappingError as exc:
                reject(path, lineno, str(exc), raw)
                continue
            stats.skipped += result.skipped
            for o in result.outs:
                line = orjson.dumps({"topic": topics[o.kind], "key": o.key, "value": o.value})
                mapped.append((o.value["ts"], len(mapped), line))
                stats.written[topics[o.kind]] += 1
    mapped.sort()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        for _ts, _n, line in mapped:
            fh.write(line + b"\n")
    return stats
