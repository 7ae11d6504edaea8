"""Replay one file with builds side by side, alternating runs, and check their outputs agree.

    git worktree add /tmp/sg-base 340e7ed
    .venv/bin/python -m bench.replay_ab --baseline /tmp/sg-base --events 1000000 --rounds 3

Each round replays the same file with: the baseline tree (an older checkout, interpreted,
run with this venv's Python from its own directory), this tree interpreted
(`STOCKGUARD_PURE=1`) and this tree compiled. The runs alternate, so a slow spell of the
shared cores hits every build alike; each build's best and median events/s are reported,
and the ratio of the medians. The compiled and interpreted builds of this tree must write
the same messages (decided_ts, a wall-clock stamp, aside); files where the baseline
differs are named (a rule changed since). Writes JSON (bench/results/replay-ab.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import report
from bench.replay_bench import generate

ROOT = Path(__file__).resolve().parent.parent


def run(tree: Path, src: Path, out: Path, pure: bool) -> float:
    """Replay `src` with the code of `tree`; return wall seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    env["PYTHONPATH"] = str(tree)
    if pure:
        env["STOCKGUARD_PURE"] = "1"
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "stockguard.cli", "replay", str(src), "--out", str(out)],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - start


def outputs(out: Path) -> dict[str, list[Any]]:
    """Read an output directory's messages, without their wall-clock stamps."""
    got: dict[str, list[Any]] = {}
    for f in sorted(out.glob("*.jsonl")):
        msgs = []
        for line in f.read_bytes().splitlines():
            m = orjson.loads(line)
            value = m.get("value", m) if isinstance(m, dict) else m
            if isinstance(value, dict):
                value.pop("decided_ts", None)
            msgs.append(m)
        got[f.name] = msgs
    return got


def main() -> int:
    """Replay the builds alternately and compare."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="an older checkout (git worktree)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--skus", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/stockguard-bench-ab")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "replay-ab.json"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "replay.jsonl"
    counts = generate(src, args.events, args.skus, args.customers)
    total = sum(counts.values())
    base = Path(args.baseline).resolve()
    builds = {
        "baseline (interpreted)": (base, True),
        "interpreted": (ROOT, True),
        "compiled": (ROOT, False),
    }
    seconds: dict[str, list[float]] = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, (tree, pure) in builds.items():
            seconds[name].append(run(tree, src, work / f"out-{name.split()[0]}", pure))
    eps = {name: [total / s for s in v] for name, v in seconds.items()}
    median = {name: statistics.median(v) for name, v in eps.items()}
    base_out = outputs(work / "out-baseline")
    interp_out = outputs(work / "out-interpreted")
    compiled_out = outputs(work / "out-compiled")
    # The builds of this tree must agree exactly; the baseline may differ where a rule
    # changed since (named per file, for the reader to check against the history).
    identical = compiled_out == interp_out
    differ = sorted(name for name in set(base_out) | set(interp_out) if base_out.get(name) != interp_out.get(name))
    head = subprocess.run(["git", "-C", str(base), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)  # noqa: S607
    result = {
        "events": total,
        "baseline": head.stdout.strip(),
        "events_per_second": {name: [round(x) for x in v] for name, v in eps.items()},
        "median": {name: round(v) for name, v in median.items()},
        "compiled_over_baseline": round(median["compiled"] / median["baseline (interpreted)"], 2),
        "compiled_over_interpreted": round(median["compiled"] / median["interpreted"], 2),
        "compiled_outputs_identical_to_interpreted": identical,
        "files_differing_from_baseline": differ,
    }
    rows = [
        *[
            (f"{name}: events/s (rounds)", ", ".join(f"{x:,.0f}" for x in eps[name]) + f"  median {median[name]:,.0f}")
            for name in builds
        ],
        ("compiled / baseline (medians)", f"{result['compiled_over_baseline']:.2f}x"),
        ("compiled / interpreted (medians)", f"{result['compiled_over_interpreted']:.2f}x"),
        ("compiled outputs identical to interpreted", "yes" if identical else "NO"),
        ("output files differing from the baseline's", ", ".join(differ) or "none"),
    ]
    report(rows, result, args.json)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
