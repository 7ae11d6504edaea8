"""The same rules as a Quix Streams application: a peer framework, for comparison.

Runs in its own virtualenv (Quix Streams pins an older confluent-kafka than ours):

    python3 -m venv /tmp/venv-quix
    /tmp/venv-quix/bin/pip install quixstreams==3.28.1 bytewax==0.21.1 redis==8.1.0 prometheus-client==0.26.0
    /tmp/venv-quix/bin/python -m bench.quix_peer --expect N   # settings from the environment

One Quix `Application`, a `StreamingDataFrame` per input topic (raw bytes in), and in each
an `update` that feeds the message to the very same pure rule code as the hand-written
loop (`bench/handwritten_loop.Loop`); outputs go out through Quix's producer. Stops once
`--expect` triggers are decided and prints events/s from the first to the last message.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from quixstreams import Application

from bench.handwritten_loop import Loop
from stockguard.config.settings import load_settings
from stockguard.flows.records import RawRecord

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run the Quix application until the expected decisions are made."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--expect", type=int, required=True, help="triggers to decide before stopping")
    args = ap.parse_args()
    settings = load_settings()
    t = settings.topics
    app = Application(
        broker_address=settings.kafka.bootstrap_servers,
        consumer_group=f"quix-peer-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        auto_create_topics=False,
        use_changelog_topics=False,
        loglevel="WARNING",
    )
    loop = Loop(settings)
    decision_topics = {t.approved, t.suppressed}
    stats = {"events": 0, "decided": 0, "first": 0.0, "last": 0.0}
    producer = app.get_producer()

    def handle(topic_name: str) -> Any:
        def update(value: bytes, key: Any, timestamp: int, headers: Any) -> None:
            if not stats["first"]:
                stats["first"] = time.monotonic()
            stats["events"] += 1
            k = key if isinstance(key, bytes) or key is None else str(key).encode()
            for r in loop.apply([RawRecord(topic_name, k, value, 0, 0, timestamp)]):
                producer.produce(r.topic, r.value, r.key)
                if r.topic in decision_topics or (r.topic == t.dlq and r.key == t.triggers):
                    stats["decided"] += 1
            stats["last"] = time.monotonic()
            if stats["decided"] >= args.expect:
                app.stop()

        return update

    for name in t.inputs():
        topic = app.topic(name, value_deserializer="bytes", key_deserializer="bytes")
        app.dataframe(topic).update(handle(name), metadata=True)
    app.run()
    producer.flush(30)
    busy = stats["last"] - stats["first"]
    sys.stderr.write(
        f"quix peer: {stats['events']:,} events in {busy:.2f} s = {stats['events'] / max(busy, 1e-9):,.0f} events/s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
