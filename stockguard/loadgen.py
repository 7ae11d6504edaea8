"""`stockguard loadgen`: produce the demo simulator's day to Kafka, paced by event time."""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from confluent_kafka import Producer

from config.settings import Settings
from connectors.simulator import SimConfig, simulate

__all__ = ["run_loadgen"]


def run_loadgen(settings: Settings, seed: int = 42, speed: float = 60.0, loops: int = 1, hours: float = 24.0) -> int:
    """Produce `loops` simulated days at `speed` x real time; return the exit code."""
    names = settings.topics.from_contract()
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({**settings.kafka.client_config(), "linger.ms": 5, "enable.idempotence": True})
    sent = 0
    for loop in range(loops):
        cfg = SimConfig(seed=seed + loop, hours=hours, start_ts=SimConfig().start_ts + int(loop * hours * 3_600_000))
        wall0 = time.monotonic()
        for topic, key, value in simulate(cfg):
            if isinstance(value, dict) and isinstance(value.get("ts"), int):
                due = wall0 + (value["ts"] - cfg.start_ts) / 1000 / speed
                delay = due - time.monotonic()
                if delay > 0:
                    producer.flush(delay)  # serve callbacks while we wait
                    rest = due - time.monotonic()
                    if rest > 0:
                        time.sleep(rest)
            data = value.encode() if isinstance(value, str) else orjson.dumps(value)
            while True:
                try:
                    producer.produce(names[topic], data, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
            if sent % 10_000 == 0:
                producer.poll(0)
                sys.stderr.write(f"loadgen: {sent:,} messages" + "\n")
            if failures:
                sys.stderr.write(f"loadgen: delivery failed: {failures[0]}" + "\n")
                return 1
    left = producer.flush(30)
    sys.stderr.write(f"loadgen: {sent:,} messages produced, {left} unacknowledged" + "\n")
    return 0 if left == 0 and not failures else 1
