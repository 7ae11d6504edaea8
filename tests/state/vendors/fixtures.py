"""Load the recorded vendor payloads of tests/fixtures/vendors (each cites its vendor doc)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vendors"


def fixture(name: str) -> dict[str, Any]:
    """Return a fixture document: source, notes, headers and body."""
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    assert doc["source"], f"{name} must cite the vendor doc it follows"
    return doc


def raw_body(name: str) -> bytes:
    """Return a fixture's body as the vendor would send it (compact JSON)."""
    return orjson.dumps(fixture(name)["body"])


def export_rows() -> list[dict[str, Any]]:
    """Return the GA4 BigQuery export rows."""
    return [orjson.loads(line) for line in (FIXTURES / "ga4_export.jsonl").read_bytes().splitlines() if line.strip()]
