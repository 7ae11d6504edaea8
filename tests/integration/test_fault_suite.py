"""The fault suite's short form: the live job through kill -9, SIGTERM, outages and poison.

The full form (`python -m bench.faults all`) runs the same scenarios on a simulated day
of 134k messages; its figures are in docs/operations.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faults.harness import (
    Message,
    PrivateService,
    Run,
    Scenario,
    day,
    kill9_storm,
    outage,
    poison,
    sigterm_cycles,
)
from tests.conftest import Services

pytestmark = pytest.mark.integration

RATE = 500.0


@pytest.fixture(scope="module")
def small_day() -> list[Message]:
    return day(2.0, events_per_hour=3000, skus=60, customers=400)


def check(run: Run) -> None:
    sys.stdout.write(run.line() + "\n")  # the figure, shown with -s
    assert run.ok, run.line()


def test_kill_9_three_times_changes_no_decision(services: Services, tmp_path: Path, small_day: list[Message]) -> None:
    run = kill9_storm(Scenario(services.kafka, services.redis, tmp_path, small_day, RATE), kills=3)
    check(run)
    assert run.ledger is not None and run.ledger.equal_to_replay == run.ledger.triggers > 2000
    assert run.figures["decisions read back from the journal"] > 0


def test_sigterm_stops_gracefully_and_re_sends_nothing(
    services: Services, tmp_path: Path, small_day: list[Message]
) -> None:
    run = sigterm_cycles(Scenario(services.kafka, services.redis, tmp_path, small_day, RATE), stops=2)
    check(run)
    assert run.figures["rc"] == [0, 0] and run.figures["re-sent"] == 0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateService]:
    svc = PrivateService("kafka", tmp_path)
    yield svc
    svc.stop()


def test_a_broker_outage_is_ridden_through(
    broker: PrivateService, services: Services, tmp_path: Path, small_day: list[Message]
) -> None:
    sc = Scenario(broker.address, services.redis, tmp_path, small_day, 300.0)
    run = outage(sc, broker, 15.0, "broker outage 15 s", hold_input=True)
    check(run)
    assert run.figures["job exited during outage"] is False
    assert 503 in run.figures["/readyz during outage"]
    assert run.figures["ready again after s"] is not None
    # Messages in flight when the broker stopped are retried per partition, so a handful
    # of decisions may see another cross-partition order than the replay (documented).
    assert run.ledger is not None and run.ledger.equal_to_replay >= run.ledger.triggers * 0.99


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateService]:
    svc = PrivateService("redis", tmp_path)
    yield svc
    svc.stop()


def test_a_redis_outage_changes_nothing(
    redis: PrivateService, services: Services, tmp_path: Path, small_day: list[Message]
) -> None:
    sc = Scenario(services.kafka, redis.address, tmp_path, small_day, RATE, STOCKGUARD_REDIS__ENABLED="true")
    check(outage(sc, redis, 5.0, "redis outage 5 s"))


def test_every_poison_message_is_dead_lettered_and_the_day_unharmed(
    services: Services, tmp_path: Path, small_day: list[Message]
) -> None:
    run = poison(services.kafka, services.redis, tmp_path, small_day, RATE)
    check(run)
    assert run.figures["crashes"] == 0 and run.figures["dead-lettered"] == run.figures["poison messages"]


def test_past_the_outage_tolerance_the_job_exits_non_zero_naming_the_broker(
    broker: PrivateService, tmp_path: Path
) -> None:
    import time

    from bench.faults.harness import Env

    e = Env(broker.address, "redis://127.0.0.1:1/0", tmp_path, STOCKGUARD_KAFKA__OUTAGE_TOLERANCE="5s")
    e.create_topics()
    p = e.start()
    try:
        deadline = time.monotonic() + 60
        while e.ready() != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert e.ready() == 200
        broker.stop()
        rc = p.wait(90)
    finally:
        e.stop_all()
        broker.start()
    assert rc != 0
    log = e.log_tail(lines=40)
    assert broker.address in log and "outage_tolerance" in log
