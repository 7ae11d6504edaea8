"""Replay throughput of the full rules at scale, peak RSS, state bytes per sku and customer.

    .venv/bin/python -m bench.replay_bench --events 1000000 --skus 100000 --customers 1000000

Generates a replay file (catalog and stock levels first, then clicks, triggers, orders and
stock changes in realistic proportions), replays it through `stockguard replay` in a child
process (so its peak RSS is the replay's own), then feeds the same events to one pure
decision partition to measure state bytes per sku and per customer. `--instructions`
also counts the replay's CPU instructions per event under valgrind's callgrind: a figure
the noise of shared cores does not move, to see a change's effect. Prints a table and
writes JSON (`--json`, default bench/results/replay.json). `STOCKGUARD_PURE=1` measures
the interpreted hot path.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

import stockguard._hot as hot
from bench.common import report
from stockguard.config.settings import Settings
from stockguard.state.decision import Decider, DecisionState
from stockguard.state.models import parse_order, parse_product, parse_stock, parse_trigger

ROOT = Path(__file__).resolve().parent.parent

T0 = 1764547200000
LOCS = ["WH-PARIS", "WH-LYON", "WH-LILLE"]
SIZES = ["XS", "S", "M", "L", "XL"]
KINDS = ["cart_abandonment", "browse_abandonment", "promotion", "back_in_stock", "price_drop"]


def generate(
    path: Path, events: int, skus: int, customers: int, seed: int = 1, every_customer: bool = False
) -> dict[str, int]:
    """Write a replay file; return counts per topic.

    `every_customer` sizes state rather than speed: every sku in stock, triggers (80 % of
    events) spread evenly over the skus and round-robin over the customers, so that every
    customer id ends up holding state (an approval) as in a real audience of that size.
    """
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    sku_ids = [f"SKU-{i // 5:06d}-{SIZES[i % 5]}" for i in range(skus)]
    with open(path, "wb") as fh:

        def put(topic: str, key: str, value: dict[str, Any]) -> None:
            fh.write(orjson.dumps({"topic": topic, "key": key, "value": value}) + b"\n")
            counts[topic] = counts.get(topic, 0) + 1

        for i, sku in enumerate(sku_ids):
            group = f"g{i // 50}"
            put(
                "catalog.products",
                sku,
                {
                    "sku": sku,
                    "ts": T0,
                    "product_id": sku[:10],
                    "group": group,
                    "size": SIZES[i % 5],
                    "price": 20.0 + i % 30,
                    "unit_cost": 8.0 + i % 10,
                    "active": True,
                    "online": i % 97 != 0,
                },
            )
            put(
                "inventory.stock",
                sku,
                {
                    "event_id": f"l{i}",
                    "ts": T0,
                    "type": "level",
                    "sku": sku,
                    "location": LOCS[i % 3],
                    "on_hand": rng.choice([50, 100, 400] if every_customer else [0, 0, 5, 20, 100, 400]),
                    "reserved": 0,
                },
            )
        n = sum(counts.values())
        ts = T0
        # Sizing state: every approval within the cap window (16 h), so no customer has
        # expired by the end; otherwise one day.
        span = 8 * 3_600_000 if every_customer else 86_400_000
        step = max(1, span // max(1, events - n))
        i = 0
        # Shares of clicks, triggers, orders; the rest are stock changes.
        click_share, trigger_share, order_share = (0.10, 0.80, 0.05) if every_customer else (0.50, 0.20, 0.15)
        triggers = 0
        while n < events:
            i += 1
            ts += step
            r = rng.random()
            if every_customer:
                sku = sku_ids[rng.randrange(skus)]
                if click_share <= r < click_share + trigger_share:
                    # 7919 is prime: the triggers visit every customer id before repeating.
                    triggers += 1
                    cust = f"c{(triggers * 7919) % customers}"
                else:
                    cust = f"c{rng.randrange(customers)}"
            else:
                sku = sku_ids[int(rng.paretovariate(1.2)) % skus]
                cust = f"c{rng.randrange(customers)}"
            if r < click_share:
                put(
                    "shop.clickstream",
                    cust,
                    {
                        "event_id": f"v{i}",
                        "ts": ts,
                        "type": "product_view",
                        "customer_id": cust,
                        "session_id": f"s{i // 7}",
                        "sku": sku,
                        "qty": 1,
                    },
                )
            elif r < click_share + trigger_share:
                put(
                    "marketing.triggers",
                    cust,
                    {
                        "trigger_id": f"t{i}",
                        "ts": ts,
                        "campaign_id": "cm",
                        "customer_id": cust,
                        # Back-in-stock sends do not count against the cap, so hold no state.
                        "kind": KINDS[i % 3] if every_customer else KINDS[i % 5],
                        "channel": "email",
                        "skus": [sku],
                        "consent": every_customer or i % 20 != 0,
                    },
                )
            elif r < click_share + trigger_share + order_share:
                line: dict[str, Any] = {"sku": sku, "qty": 1 + i % 3, "unit_price": 25.0}
                if i % 3:
                    line["location"] = LOCS[i % 3]
                put(
                    "shop.orders",
                    f"o{i}",
                    {
                        "event_id": f"o{i}",
                        "ts": ts,
                        "order_id": f"o{i}",
                        "status": "placed",
                        "customer_id": cust,
                        "campaign_id": "cm" if i % 2 else None,
                        "lines": [line],
                    },
                )
            else:
                if i % 4:
                    put(
                        "inventory.stock",
                        sku,
                        {
                            "event_id": f"a{i}",
                            "ts": ts,
                            "type": "adjustment",
                            "sku": sku,
                            "location": LOCS[i % 3],
                            "delta": rng.choice([-2, -1, 5, 20]),
                        },
                    )
                else:
                    put(
                        "inventory.stock",
                        sku,
                        {
                            "event_id": f"l{i}",
                            "ts": ts,
                            "type": "level",
                            "sku": sku,
                            "location": LOCS[i % 3],
                            "on_hand": rng.randrange(0, 200),
                            "reserved": rng.randrange(0, 5),
                        },
                    )
            n += 1
    return counts


def replay(path: Path, out: Path) -> dict[str, Any]:
    """Run `stockguard replay` in a child; return its wall time, summary and peak RSS."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "stockguard.cli", "replay", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    seconds = time.monotonic() - start
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "summary": proc.stdout, "peak_rss_mb": rss_kb / 1024}


def instructions(work: Path) -> dict[str, float]:
    """Count the replay's instructions per event under callgrind: a figure noise does not move.

    Two fixed files of the same catalog (10,000 skus, seed 1): 100,000 and 20,000 lines.
    Both pay the same start-up and catalog load, so their difference over the 80,000 extra
    events is what an event costs, in CPU instructions, whatever else runs on the cores.
    """
    counts = {}
    for lines in (20_000, 100_000):
        src = work / f"instructions-{lines}.jsonl"
        if not src.exists():
            generate(src, lines, 10_000, 100_000)
        out = work / f"instructions-out-{lines}"
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
            + [sys.executable, "-m", "stockguard.cli", "replay", str(src), "--out", str(out)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        refs = [line for line in proc.stderr.splitlines() if "I   refs:" in line or "I refs:" in line]
        counts[lines] = int(refs[-1].split(":")[1].replace(",", "").strip())
    per_event = (counts[100_000] - counts[20_000]) / 80_000
    return {
        "instructions_per_event": round(per_event),
        "instructions_20k": counts[20_000],
        "instructions_100k": counts[100_000],
    }


def state_bytes(path: Path) -> dict[str, float]:
    """Feed the events to one pure decision partition; pickled bytes per sku and customer."""
    d = Decider(DecisionState(0, 1), Settings().rules, lambda: 0)
    out: list[Any] = []
    with open(path, "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            topic, v = rec["topic"], rec["value"]
            if topic == "inventory.stock":
                d.on_stock(parse_stock(v), out)
            elif topic == "shop.orders":
                d.on_order(parse_order(v), out)
            elif topic == "catalog.products":
                d.on_product(parse_product(v), out)
            elif topic == "marketing.triggers":
                d.on_trigger(parse_trigger(v), out)
            out.clear()
    st = d.state
    sku_bytes = len(pickle.dumps(st.skus, protocol=pickle.HIGHEST_PROTOCOL))
    cust_bytes = len(pickle.dumps(st.customers, protocol=pickle.HIGHEST_PROTOCOL))
    return {
        "skus_in_state": len(st.skus),
        "customers_in_state": len(st.customers),
        "bytes_per_sku_pickled": sku_bytes / max(1, len(st.skus)),
        "bytes_per_customer_pickled": cust_bytes / max(1, len(st.customers)),
    }


def main() -> int:
    """Run the benchmark and print its table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--skus", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument(
        "--every-customer",
        action="store_true",
        help="size state: every sku in stock, 80%% triggers round-robin over the customers",
    )
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per event under valgrind's callgrind (slow: minutes)",
    )
    ap.add_argument("--work", default="/tmp/stockguard-bench")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "replay.json"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "replay.jsonl"
    t = time.monotonic()
    counts = generate(src, args.events, args.skus, args.customers, every_customer=args.every_customer)
    gen_s = time.monotonic() - t
    r = replay(src, work / "out")
    sb = state_bytes(src)
    events = sum(counts.values())
    result = {
        "events": events,
        "skus": args.skus,
        "customers": args.customers,
        "counts": counts,
        "generate_seconds": round(gen_s, 2),
        "replay_seconds": round(r["seconds"], 2),
        "events_per_second": round(events / r["seconds"]),
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        **{k: round(v, 1) for k, v in sb.items()},
        "cpus": os.cpu_count(),
        # The child replay inherits STOCKGUARD_PURE: it runs the same build as this process.
        "hot_path": hot.mode(),
    }
    if args.instructions:
        result.update(instructions(work))
    rows = [
        ("events", f"{events:,}"),
        ("skus / customers", f"{args.skus:,} / {args.customers:,}"),
        ("replay wall time (incl. start-up)", f"{r['seconds']:.1f} s"),
        ("events/s", f"{result['events_per_second']:,}"),
        ("hot path", hot.mode()),
        *(
            [("instructions per event (callgrind)", f"{result['instructions_per_event']:,}")]
            if args.instructions
            else []
        ),
        ("peak RSS of the replay", f"{result['peak_rss_mb']:,.0f} MB"),
        ("state: pickled bytes per sku (one partition)", f"{result['bytes_per_sku_pickled']:.0f}"),
        ("state: pickled bytes per customer", f"{result['bytes_per_customer_pickled']:.0f}"),
        ("skus / customers holding state", f"{result['skus_in_state']:,.0f} / {result['customers_in_state']:,.0f}"),
    ]
    report(rows, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
