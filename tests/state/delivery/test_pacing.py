"""Token buckets, backoff and the circuit: the deliverers' pacing, on an injected clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockguard.state.delivery.pacing import Backoff, Circuit, TokenBucket, retry_after


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    b = TokenBucket(rate=10.0, burst=3.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.wait(0.0) == pytest.approx(0.1)
    assert b.take(0.1) and not b.take(0.1)
    assert b.take(10.0, 3.0)  # refilled to the burst, not beyond
    assert not b.take(10.0)
    with pytest.raises(ValueError):
        b.wait(10.0, 4.0)


@given(st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=300))
def test_a_bucket_never_lets_more_than_burst_plus_rate_times_time(gaps: list[float]) -> None:
    b = TokenBucket(rate=50.0, burst=5.0)
    now, sent = 0.0, 0
    for gap in gaps:
        now += gap
        while b.take(now):
            sent += 1
    assert sent <= 5 + 50.0 * now + 1e-6


def test_a_vendor_wait_wins_and_is_read_from_either_header() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"X-RateLimit-Wait": "2.5"}) == 2.5
    assert retry_after({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after({"Retry-After": "999999"}) == 3600.0
    assert retry_after({}) is None
    assert Backoff(random.Random(1).random).delay(3, vendor_wait=7.0) == 7.0


def test_backoff_grows_exponentially_to_its_cap_with_full_jitter() -> None:
    b = Backoff(random.Random(1).random, base=0.5, cap=8.0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (30, 8.0)):
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range


def test_the_circuit_opens_stops_calls_probes_once_and_closes_by_itself() -> None:
    c = Circuit(threshold=3, cooldown=30.0)
    for t in (0.0, 1.0):
        c.failure(t)
    assert c.allow(1.5)  # still closed below the threshold
    c.failure(2.0)
    assert c.state(2.0) == "open" and not c.allow(10.0)
    assert c.allow(32.0)  # the one probe
    assert not c.allow(32.1)  # while it is out, nothing else
    c.failure(33.0)  # the probe failed: open again for a full cooldown
    assert not c.allow(60.0) and c.allow(63.1)
    c.success()
    assert c.state(63.2) == "closed" and c.allow(63.2)


def test_braze_rate_limit_reset_is_a_wait_from_now() -> None:
    from stockguard.state.delivery.pacing import reset_wait, retry_after

    assert reset_wait({"x-ratelimit-reset": "1700000010"}, 1700000004.5) == 5.5
    assert reset_wait({"X-RateLimit-Reset": "1"}, 100.0) == 0.0
    assert reset_wait({}, 1.0) is None
    assert retry_after({"x-RateLimit-Wait": "0.25"}) == 0.25
