"""Run the fault suite at full size and print each scenario's figures.

python -m bench.faults all --kills 20 --sigterms 5 --outage 60
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.faults.harness import PrivateService, Scenario, day, kill9_storm, log, outage, poison, sigterm_cycles


def main() -> int:
    """Run the chosen scenarios; exit 1 if any missed its targets."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all", choices=["kill9", "sigterm", "broker", "redis", "poison", "all"])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--sigterms", type=int, default=5)
    ap.add_argument("--outage", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1500.0, help="input messages per second")
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours of the day")
    ap.add_argument("--events-per-hour", type=int, default=4000)
    ap.add_argument("--skus", type=int, default=300)
    ap.add_argument("--customers", type=int, default=20000)
    args = ap.parse_args()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    tmp = Path(tempfile.mkdtemp(prefix="stockguard-faults-"))
    msgs = day(args.hours, events_per_hour=args.events_per_hour, skus=args.skus, customers=args.customers)
    log(f"day of {len(msgs):,} messages at {args.rate:,.0f}/s; logs in {tmp}")
    runs = []
    want = {args.what} if args.what != "all" else {"kill9", "sigterm", "broker", "redis", "poison"}
    if "kill9" in want:
        runs.append(kill9_storm(Scenario(kafka, redis, tmp, msgs, args.rate), args.kills))
        print(runs[-1].line(), flush=True)
    if "sigterm" in want:
        runs.append(sigterm_cycles(Scenario(kafka, redis, tmp, msgs, args.rate), args.sigterms))
        print(runs[-1].line(), flush=True)
    if "broker" in want:
        broker = PrivateService("kafka", tmp)
        try:
            sc = Scenario(broker.address, redis, tmp, msgs, args.rate)
            name = f"broker outage {args.outage:.0f} s, upstream holding back"
            runs.append(outage(sc, broker, args.outage, name, hold_input=True))
            print(runs[-1].line(), flush=True)
            sc = Scenario(broker.address, redis, tmp, msgs, args.rate)
            name = f"broker outage {args.outage:.0f} s, upstream buffering"
            runs.append(outage(sc, broker, args.outage, name))
        finally:
            broker.stop()
        print(runs[-1].line(), flush=True)
    if "redis" in want:
        red = PrivateService("redis", tmp)
        try:
            sc = Scenario(kafka, red.address, tmp, msgs, args.rate, STOCKGUARD_REDIS__ENABLED="true")
            runs.append(outage(sc, red, args.outage, f"redis outage {args.outage:.0f} s"))
        finally:
            red.stop()
        print(runs[-1].line(), flush=True)
    if "poison" in want:
        runs.append(poison(kafka, redis, tmp, msgs, args.rate))
        print(runs[-1].line(), flush=True)
    for r in runs:
        if r.ledger and r.ledger.examples:
            print(f"  {r.name} examples: {r.ledger.examples}", flush=True)
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
