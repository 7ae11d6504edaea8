"""`stockguard loadgen`: produce the demo simulator's day to Kafka, paced by event time."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Producer

from stockguard.config.settings import Settings
from stockguard.sim import SimConfig, simulate

__all__ = ["produce_paced", "run_loadgen"]

Message = tuple[str, str | None, Any]


def produce_paced(
    producer: Producer,
    messages: Iterable[Message],
    names: dict[str, str],
    start_ts: int,
    speed: float,
    on_delivery: Callable[[Any, Any], None],
    tick: Callable[[int], bool] | None = None,
) -> int:
    """Produce simulator messages, each when its event time is due at `speed` x real time.

    `names` maps contract topic names to the configured ones. `tick(sent)` runs after each
    message; returning False stops early. Returns how many messages were produced.
    """
    mono0 = time.monotonic()
    sent = 0
    for topic, key, value in messages:
        if isinstance(value, dict) and isinstance(value.get("ts"), int):
            due = mono0 + (value["ts"] - start_ts) / 1000 / speed
            delay = due - time.monotonic()
            if delay > 0:
                producer.flush(delay)  # serve delivery callbacks while waiting
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
        if tick is not None and not tick(sent):
            break
    return sent


def run_loadgen(settings: Settings, seed: int = 42, speed: float = 60.0, loops: int = 1, hours: float = 24.0) -> int:
    """Produce `loops` simulated days at `speed` x real time; return the exit code."""
    names = settings.topics.from_contract()
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({**settings.kafka.client_config(), "linger.ms": 5, "enable.idempotence": True})
    sent = 0

    def tick(n: int) -> bool:
        if (sent + n) % 10_000 == 0:
            producer.poll(0)
            sys.stderr.write(f"loadgen: {sent + n:,} messages\n")
        return not failures

    for loop in range(loops):
        cfg = SimConfig(seed=seed + loop, hours=hours, start_ts=SimConfig().start_ts + int(loop * hours * 3_600_000))
        sent += produce_paced(producer, simulate(cfg), names, cfg.start_ts, speed, on_delivery, tick)
        if failures:
            sys.stderr.write(f"loadgen: delivery failed: {failures[0]}\n")
            return 1
    left = producer.flush(30)
    sys.stderr.write(f"loadgen: {sent:,} messages produced, {left} unacknowledged\n")
    return 0 if left == 0 and not failures else 1
