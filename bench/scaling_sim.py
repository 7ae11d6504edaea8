"""What a decision partition costs, and a model of it at 8, 32 and 128 workers.

    .venv/bin/python -m bench.scaling_sim --events 300000 --skus 20000

Today every stock, catalog and order event is applied once per decision partition (the
partitions hold the product state their triggers need). This bench measures, on one
fixed replay file:

1. the replay at 1, 2, 4 and 8 decision partitions in one worker (alternating runs):
   events/s, peak RSS, so the time and memory of one more partition are measured, not
   guessed (`STOCKGUARD_DECISION_PARTITIONS`);
2. the pure cost of applying a product-side event to one partition (the compiled
   `Decider`), so the rest of a partition's per-event cost is Bytewax moving the copy;
3. how many compact availability changes the same events make for a sku-keyed design:
   product events applied once, on the worker owning the sku, which broadcasts to the
   decision partitions only `(sku, available, min(ATP, cap))` when that changed, coalesced
   over a batch of `--batch` events;

then models the CPU one worker spends per input event at W workers (W decision
partitions, one per worker), today and sku-keyed, and the events/s a cluster of W workers
could take if each had a core. Prints a table and writes JSON (bench/results/scaling.json).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import report
from bench.replay_bench import generate
from stockguard.config.settings import Settings
from stockguard.state.decision import Decider, DecisionState
from stockguard.state.models import Order, Product, StockAdjustment, StockLevel, parse_order, parse_product, parse_stock

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_TOPICS = ("inventory.stock", "shop.orders", "catalog.products")
WORKERS = (1, 2, 8, 32, 128)


def replay_at(path: Path, partitions: int, out: Path) -> dict[str, float]:
    """Replay the file with `partitions` decision partitions; wall seconds and peak RSS."""
    env = dict(os.environ) | {"STOCKGUARD_DECISION_PARTITIONS": str(partitions)}
    # A fresh parent per run: RUSAGE_CHILDREN's peak is over every child a process had.
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "stockguard.cli", "replay", str(path), "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    seconds, rss_kb = proc.stdout.split()
    return {"seconds": float(seconds), "peak_rss_mb": int(rss_kb) / 1024}


def load_events(path: Path) -> list[tuple[str, Any]]:
    """Parse the file's product-side events, in order."""
    events: list[tuple[str, Any]] = []
    with open(path, "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            topic, v = rec["topic"], rec["value"]
            if topic == "inventory.stock":
                events.append((topic, parse_stock(v)))
            elif topic == "shop.orders":
                events.append((topic, parse_order(v)))
            elif topic == "catalog.products":
                events.append((topic, parse_product(v)))
    return events


def apply_cost_after(events: list[tuple[str, Any]], warm: int, repeat: int = 3) -> float:
    """Return the best seconds per product-side event of one pure decision partition.

    The first `warm` events (the catalog load) are applied untimed.
    """
    rules = Settings().rules
    best = float("inf")
    for _ in range(repeat):
        d = Decider(DecisionState(0, 1), rules, lambda: 0)
        out: list[Any] = []
        for _topic, ev in events[:warm]:
            d.apply(ev, out)
        out.clear()
        rest = events[warm:]
        t = time.perf_counter()
        for _topic, ev in rest:
            d.apply(ev, out)
            out.clear()
        best = min(best, (time.perf_counter() - t) / len(rest))
    return best


def hop_cost(n: int = 400_000, keys: int = 4, repeat: int = 3) -> float:
    """Return the seconds Bytewax spends moving one keyed item into a stateful step.

    The same items through a flow that drops them before the stateful step and through
    one that hands them to it: the difference per item is the hop a broadcast copy or a
    compact change pays on top of its own work.
    """
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.operators import StatefulBatchLogic
    from bytewax.testing import TestingSink, TestingSource, run_main

    class Drop(StatefulBatchLogic[int, int, None]):
        """Keep nothing, emit nothing: only the hop is measured."""

        def on_batch(self, values: list[int]) -> tuple[list[int], bool]:
            return [], False

        def snapshot(self) -> None:
            return None

    items = [(str(i % keys), i) for i in range(n)]

    def timed(stateful: bool) -> float:
        flow = Dataflow("hop")
        s = op.input("in", flow, TestingSource(items, batch_size=1000))
        if stateful:
            out: Any = op.stateful_batch("hop", s, lambda _resume: Drop())
        else:
            out = op.flat_map_batch("drop", s, lambda _b: [])
        op.output("out", out, TestingSink([]))
        t = time.perf_counter()
        run_main(flow)  # type: ignore[no-untyped-call]
        return time.perf_counter() - t

    with_hop = min(timed(True) for _ in range(repeat))
    without = min(timed(False) for _ in range(repeat))
    return max(0.0, (with_hop - without) / n)


def xfer_cost(events: list[tuple[str, Any]], n: int = 50_000) -> dict[str, float]:
    """Return the seconds to pickle and unpickle a routed copy and a compact change.

    Between processes (-i/-a: the way past one core, as workers in one process share the
    GIL) Bytewax pickles every item it exchanges: a broadcast copy pays this on top of its
    hop, and so would a compact change.
    """
    import pickle

    from stockguard.flows.routing import ToDecision

    sample = [ev for _t, ev in events[-n:]]
    copies = [("1", ToDecision(1, ev, None, None)) for ev in sample]
    changes = [("1", (ev.sku if hasattr(ev, "sku") else "SKU-000000-M", True, 17)) for ev in sample]

    def per_item(items: list[Any]) -> float:
        t = time.perf_counter()
        for it in items:
            pickle.loads(pickle.dumps(it, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own bytes
        return (time.perf_counter() - t) / len(items)

    return {"copy": min(per_item(copies) for _ in range(3)), "change": min(per_item(changes) for _ in range(3))}


def skus_of(ev: Any) -> list[str]:
    """Return the skus a product-side event changes."""
    if isinstance(ev, Order):
        return [line.sku for line in ev.lines]
    if isinstance(ev, StockLevel | StockAdjustment | Product):
        return [ev.sku]
    return []


def deltas(events: list[tuple[str, Any]], all_events: int, batch: int, cap: int) -> dict[str, float]:
    """Count the availability changes a sku owner would broadcast, coalesced per batch.

    `batch` is in input events (all topics): product events are spread over the stream
    in the same share as in the file.
    """
    rules = Settings().rules
    d = Decider(DecisionState(0, 1), rules, lambda: 0)
    out: list[Any] = []
    sent: dict[str, tuple[bool, int]] = {}
    pending: set[str] = set()
    per_batch = max(1, round(batch * len(events) / all_events))
    exact = 0
    capped = 0
    sent_exact: dict[str, int] = {}
    for n, (_topic, ev) in enumerate(events, 1):
        d.apply(ev, out)
        out.clear()
        pending.update(skus_of(ev))
        if n % per_batch == 0 or n == len(events):
            for sku in pending:
                s = d.state.skus[sku]
                avail = d._stock_ok(s) and d._catalog_ok(s)
                atp = s.atp()
                if sent_exact.get(sku) != atp:
                    exact += 1
                    sent_exact[sku] = atp
                now = (avail, min(atp, cap))
                if sent.get(sku) != now:
                    capped += 1
                    sent[sku] = now
            pending.clear()
    return {"deltas_exact": exact, "deltas_capped": capped}


def model(
    a: float, c_apply: float, c_hop: float, x_copy: float, x_change: float, share: float, changes: float
) -> list[dict[str, Any]]:
    """CPU seconds one worker spends per input event at W workers (one process each).

    a: the work split across workers (parse, route, triggers, monitors, outputs), per event.
    Today every worker applies its copy of each product event (`share` of events): a hop
    and the apply, and the W-1 copies that cross processes are pickled and unpickled
    (`x_copy`), once per copy, spread over the W workers. Sku-keyed: a product event goes
    to its sku's owner only (crossing with probability (W-1)/W) and is applied there once;
    each compact change (`changes` per input event) goes from the owner to every worker:
    a hop on each, and W-1 crossings (`x_change`). Efficiency: events/s at W against W
    times one worker of today.
    """
    one = a + share * (c_hop + c_apply)
    rows = []
    for w in WORKERS:
        cross = (w - 1) / w
        today = a / w + share * (c_hop + c_apply) + share * cross * x_copy
        sku_keyed = a / w + share * (c_hop + c_apply + cross * x_copy) / w + changes * (c_hop + cross * x_change)
        rows.append(
            {
                "workers": w,
                "today_us_per_event_per_worker": today * 1e6,
                "today_events_per_second": 1 / today,
                "today_efficiency": (1 / today) / (w / one),
                "sku_keyed_us_per_event_per_worker": sku_keyed * 1e6,
                "sku_keyed_events_per_second": 1 / sku_keyed,
                "sku_keyed_efficiency": (1 / sku_keyed) / (w / one),
            }
        )
    return rows


def main() -> int:
    """Measure the partitions, model the workers, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--skus", type=int, default=20_000)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--partitions", default="1,2,4,8,16")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per partition count")
    ap.add_argument("--batch", type=int, default=1000, help="input events a sku owner coalesces over")
    ap.add_argument("--cap", type=int, default=64, help="ATP above this is broadcast as 'at least cap'")
    ap.add_argument("--work", default="/tmp/stockguard-bench-scaling")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "scaling.json"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "replay.jsonl"
    counts = generate(src, args.events, args.skus, args.customers)
    total = sum(counts.values())
    product_events = sum(counts.get(t, 0) for t in PRODUCT_TOPICS)
    parts = [int(p) for p in args.partitions.split(",")]

    runs: dict[int, list[dict[str, float]]] = {p: [] for p in parts}
    for _ in range(args.rounds):
        for p in parts:
            runs[p].append(replay_at(src, p, work / f"out-{p}"))
    # Per event at P partitions: the best of the alternating runs (least disturbed).
    per_event = {p: min(r["seconds"] for r in runs[p]) / total for p in parts}
    rss = {p: max(r["peak_rss_mb"] for r in runs[p]) for p in parts}
    # Least squares on t(P) = a + b * P.
    n = len(parts)
    mx = sum(parts) / n
    my = sum(per_event.values()) / n
    b = sum((p - mx) * (per_event[p] - my) for p in parts) / sum((p - mx) ** 2 for p in parts)
    a = my - b * mx
    rss_slope = sum((p - mx) * (rss[p] - sum(rss.values()) / n) for p in parts) / sum((p - mx) ** 2 for p in parts)

    events = load_events(src)
    # The catalog load (the file's first 2 x skus lines) creates the skus: not the steady
    # state a partition's copy costs, so the apply is timed on the events after it.
    c_apply = apply_cost_after(events, 2 * args.skus)
    c_hop = hop_cost()
    xfer = xfer_cost(events)
    share = product_events / total
    # The model's a: one worker's whole cost per event, less its product copy (hop + apply).
    a_model = per_event[1] - share * (c_hop + c_apply)
    dl = deltas(events, total, args.batch, args.cap)
    dpe_exact = dl["deltas_exact"] / total
    dpe_capped = dl["deltas_capped"] / total
    table = model(a_model, c_apply, c_hop, xfer["copy"], xfer["change"], share, dpe_capped)
    table_exact = model(a_model, c_apply, c_hop, xfer["copy"], xfer["change"], share, dpe_exact)

    result = {
        "events": total,
        "skus": args.skus,
        "product_side_events": product_events,
        "product_share": round(share, 3),
        "replay": {
            str(p): {"seconds": [round(r["seconds"], 2) for r in runs[p]], "peak_rss_mb": round(rss[p], 1)}
            for p in parts
        },
        "fit_a_us_per_event": round(a * 1e6, 3),
        "fit_b_us_per_event_per_partition": round(b * 1e6, 3),
        "model_a_us_per_event": round(a_model * 1e6, 3),
        "rss_mb_per_partition": round(rss_slope, 1),
        "apply_us_per_product_event": round(c_apply * 1e6, 3),
        "hop_us_per_copy": round(c_hop * 1e6, 3),
        "pickle_us_per_copy": round(xfer["copy"] * 1e6, 3),
        "pickle_us_per_change": round(xfer["change"] * 1e6, 3),
        "batch": args.batch,
        "cap": args.cap,
        **dl,
        "model_capped": table,
        "model_exact": table_exact,
    }
    rows: list[tuple[str, str]] = [
        ("events / product-side", f"{total:,} / {product_events:,} ({share:.0%})"),
        *[
            (
                f"replay, {p} decision partition(s)",
                f"{1 / per_event[p]:,.0f} events/s, {rss[p]:,.0f} MB",
            )
            for p in parts
        ],
        ("fit t(P) = a + b P: a / b per event", f"{a * 1e6:.2f} us / {b * 1e6:.2f} us"),
        ("memory per extra partition", f"{rss_slope:,.1f} MB"),
        ("pure apply of a product event / Bytewax hop of a copy", f"{c_apply * 1e6:.2f} us / {c_hop * 1e6:.2f} us"),
        (
            "pickle + unpickle across processes: a copy / a compact change",
            f"{xfer['copy'] * 1e6:.2f} us / {xfer['change'] * 1e6:.2f} us",
        ),
        ("one partition's copy per input event: share x (hop + apply)", f"{share * (c_hop + c_apply) * 1e6:.2f} us"),
        (
            f"compact changes per event (batch {args.batch}), exact ATP / capped at {args.cap}",
            f"{dpe_exact:.3f} / {dpe_capped:.3f}",
        ),
        *[
            (
                f"W={r['workers']}: events/s today / sku-keyed (efficiency)",
                f"{r['today_events_per_second']:,.0f} ({r['today_efficiency']:.0%}) / "
                f"{r['sku_keyed_events_per_second']:,.0f} ({r['sku_keyed_efficiency']:.0%})",
            )
            for r in table
        ],
    ]
    report(rows, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
