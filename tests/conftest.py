"""Start the real Kafka broker and Redis for integration tests (or use the user's)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"


@dataclass(frozen=True)
class Services:
    """Addresses of the services the integration tests talk to."""

    kafka: str
    redis: str


def _start(what: str) -> str:
    proc = subprocess.run(
        ["bash", str(SERVICES), f"start-{what}"], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not start {what}:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _warm_up(kafka: str) -> None:
    """Wait until the broker serves idempotent producers: a fresh broker first loads its
    coordinators ("Coordinator load in progress"), which would stall the first test."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    p.produce("stockguard-warm-up", b"1")
    left = p.flush(120)
    if left:
        raise RuntimeError(f"Kafka at {kafka} did not acknowledge a message within 120 s")


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Use KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else start local ones for the session."""
    started = []
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not kafka:
        kafka = _start("kafka")
        started.append("kafka")
    _warm_up(kafka)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        redis_url = _start("redis")
        started.append("redis")
    yield Services(kafka, redis_url)
    if os.environ.get("STOCKGUARD_KEEP_SERVICES"):
        return
    for what in started:
        subprocess.run(["bash", str(SERVICES), f"stop-{what}"], capture_output=True, timeout=120, check=False)
