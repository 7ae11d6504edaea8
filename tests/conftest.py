"""Start the real Kafka broker and Redis for integration tests (or use the user's)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _own_services_env() -> dict[str, str]:
    """Env for services of this session alone: a fresh run dir and free ports.

    A machine that ran the suite before keeps its broker's data (every test makes its own
    topics); a broker started on thousands of leftover partitions takes minutes to serve,
    and a leftover process may hold the default ports. STOCKGUARD_KEEP_SERVICES=1 keeps
    the shared defaults instead, so a developer's broker outlives the session.
    """
    env = dict(os.environ)
    if os.environ.get("STOCKGUARD_KEEP_SERVICES"):
        return env
    run_dir = tempfile.mkdtemp(prefix="stockguard-test-services-")
    env |= {
        "STOCKGUARD_RUN_DIR": run_dir,
        "KAFKA_PORT": str(_free_port()),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "REDIS_PORT": str(_free_port()),
    }
    return env


def _services(verb: str, what: str, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SERVICES), f"{verb}-{what}"], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _start(what: str, env: dict[str, str]) -> str:
    proc = _services("start", what, env, 600)
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
    env = _own_services_env()
    try:
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not kafka:
            started.append("kafka")
            kafka = _start("kafka", env)
        _warm_up(kafka)
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            started.append("redis")
            redis_url = _start("redis", env)
        yield Services(kafka, redis_url)
    finally:
        if not os.environ.get("STOCKGUARD_KEEP_SERVICES"):
            for what in started:
                _services("stop", what, env, 120)
            if env.get("STOCKGUARD_RUN_DIR", "").startswith(tempfile.gettempdir() + "/stockguard-test-services-"):
                shutil.rmtree(env["STOCKGUARD_RUN_DIR"], ignore_errors=True)
