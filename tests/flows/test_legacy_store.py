"""A real Bytewax recovery store written before the `stockguard.` namespace resumes as if never stopped.

The fixture (tests/fixtures/store-555fb64, made by its make_store.py with the code of
555fb64) holds the store after the first half of a simulated day and what that run wrote.
Resumed with today's code on the whole day, the first half's outputs followed by the
resumed run's must equal one uninterrupted run of today's code, message for message.
"""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from stockguard.config.settings import Settings
from stockguard.connectors.files import JsonlSink, OutputStats, ReplaySource
from stockguard.flows.dataflow import build_flow

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "store-555fb64"


def replay(day: Path, recovery: Path, out: Path) -> dict[str, list[dict[str, Any]]]:
    flow = build_flow(
        Settings().with_workers(1),
        {"replay": ReplaySource(day)},
        {"files": JsonlSink(out, OutputStats())},
        clock=lambda: 7,
        recovery=True,
    )
    run_main(flow, epoch_interval=timedelta(seconds=10), recovery_config=RecoveryConfig(str(recovery)))  # type: ignore[no-untyped-call]
    return {p.stem: [orjson.loads(line) for line in p.read_bytes().splitlines()] for p in out.glob("*.jsonl")}


def comparable(msg: dict[str, Any], topic: str) -> dict[str, Any]:
    # decided_ts and a dead letter's ts are wall-clock times, not decisions.
    return {k: v for k, v in msg.items() if k != "decided_ts" and not (topic == "stockguard.dlq" and k == "ts")}


def test_a_store_of_555fb64_resumes_to_the_outputs_of_an_uninterrupted_run(tmp_path: Path) -> None:
    day = tmp_path / "day.jsonl"
    day.write_bytes(gzip.decompress((FIXTURE / "day.jsonl.gz").read_bytes()))
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "part-0.sqlite3").write_bytes(gzip.decompress((FIXTURE / "part-0.sqlite3.gz").read_bytes()))
    first: dict[str, list[dict[str, Any]]] = {}
    for line in gzip.decompress((FIXTURE / "first-half-outputs.jsonl.gz").read_bytes()).splitlines():
        rec = orjson.loads(line)
        first.setdefault(rec["topic"], []).append(rec["value"])

    resumed = replay(day, legacy, tmp_path / "resumed")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    init_db_dir(fresh, 1)  # type: ignore[no-untyped-call]
    whole = replay(day, fresh, tmp_path / "whole")

    assert sum(map(len, first.values())) > 1000 and sum(map(len, resumed.values())) > 1000
    for topic in sorted(set(whole) | set(first) | set(resumed)):
        joined = first.get(topic, []) + resumed.get(topic, [])
        if topic == "ops.surge-alerts":
            # Drain messages are limited per location since issue 15 (state/drains.py):
            # the recorded first half went out without that limit, so only the order
            # surges compare; the store's surge state (no gate in it) still resumes.
            joined = [m for m in joined if m["kind"] != "stock_drain"]
            whole[topic] = [m for m in whole.get(topic, []) if m["kind"] != "stock_drain"]
        assert [comparable(m, topic) for m in joined] == [comparable(m, topic) for m in whole.get(topic, [])], topic
