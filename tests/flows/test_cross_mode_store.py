"""A recovery store written by one build of the hot path resumes in the other, as if never stopped.

The hot modules run compiled (mypyc) or interpreted (`STOCKGUARD_PURE=1`); a job upgraded
or rolled back across the two must resume its store. A child process in the *other* mode
replays the first half of a day into a fresh Bytewax recovery store; this process resumes
it on the whole day. The first half's outputs followed by the resumed run's must equal one
uninterrupted run here, message for message. Run in both modes (scripts/test.sh), this
covers both directions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bytewax.recovery import init_db_dir

import stockguard._hot as hot
from stockguard.connectors.files import write_replay
from stockguard.sim import SimConfig, simulate
from tests.flows.test_legacy_store import comparable, replay

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from pathlib import Path
import stockguard._hot as hot
from tests.flows.test_legacy_store import replay
print(hot.mode())
replay(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
"""


def other_mode_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    env["PYTHONPATH"] = str(ROOT)
    if hot.mode() == "compiled":
        env["STOCKGUARD_PURE"] = "1"
    return env


@pytest.mark.skipif(hot.mode() != "compiled" and bool(hot.stale()), reason="no current compiled build to cross over to")
def test_a_store_of_the_other_build_resumes_to_the_outputs_of_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = SimConfig(seed=11, hours=4, skus=60, customers=2000, events_per_hour=1500, campaign_start_h=1.5)
    day = tmp_path / "day.jsonl"
    write_replay(day, list(simulate(cfg)))
    lines = day.read_bytes().splitlines(keepends=True)
    # A partition's key is its file name: the resumed run reads the whole day under it.
    (tmp_path / "first").mkdir()
    half = tmp_path / "first" / "day.jsonl"
    half.write_bytes(b"".join(lines[: len(lines) // 2]))
    store = tmp_path / "store"
    store.mkdir()
    init_db_dir(store, 1)  # type: ignore[no-untyped-call]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(half), str(store), str(tmp_path / "first-out")],
        env=other_mode_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split()[0] != hot.mode(), (child.stdout, hot.mode())
    first = replay_outputs(tmp_path / "first-out")

    resumed = replay(day, store, tmp_path / "resumed")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    init_db_dir(fresh, 1)  # type: ignore[no-untyped-call]
    whole = replay(day, fresh, tmp_path / "whole")

    assert sum(map(len, first.values())) > 500 and sum(map(len, resumed.values())) > 500
    for topic in sorted(set(whole) | set(first) | set(resumed)):
        joined = first.get(topic, []) + resumed.get(topic, [])
        assert [comparable(m, topic) for m in joined] == [comparable(m, topic) for m in whole.get(topic, [])], topic


def replay_outputs(out: Path) -> dict[str, list[dict[str, Any]]]:
    import orjson

    return {p.stem: [orjson.loads(line) for line in p.read_bytes().splitlines()] for p in out.glob("*.jsonl")}
