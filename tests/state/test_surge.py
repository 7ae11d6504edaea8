"""Window arithmetic and the order-surge lifecycle: crossing, escalation, resolution, hovering, lateness."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stockguard.config.settings import Settings
from stockguard.state.surge import Charged, SurgeState, SurgeWatcher
from stockguard.state.windows import MINUTE, MinuteWindow
from tests.helpers import T0

CFG = Settings().surge


def test_minute_window_counts_per_minute_campaign_and_key() -> None:
    w = MinuteWindow(10)
    w.add(T0, 2, "cm", "A", T0)
    w.add(T0 + 30_000, 1, None, "B", T0)
    w.add(T0 + MINUTE, 4, "cm", "A", T0 + MINUTE)
    m0 = T0 // MINUTE
    assert [b.units for b in w.buckets] == [3, 4]
    span = w.span(m0, m0 + 1)
    assert MinuteWindow.total(span) == 7
    assert MinuteWindow.campaigns(span) == {"cm": 6}
    assert MinuteWindow.keys(span) == {"A": 6, "B": 1}


def test_minute_window_takes_late_events_in_their_minute_and_refuses_older_than_horizon() -> None:
    w = MinuteWindow(5)
    now = T0 + 10 * MINUTE
    assert w.add(now, 1, None, None, now)
    assert w.add(now - 2 * MINUTE, 1, None, None, now)
    assert [b.minute for b in w.buckets] == [now // MINUTE - 2, now // MINUTE]
    assert not w.add(now - 5 * MINUTE, 1, None, None, now)
    w.evict(now + 4 * MINUTE)
    assert [b.minute for b in w.buckets] == [now // MINUTE]
    w.evict(now + 10 * MINUTE)
    assert w.buckets == []


def drive(
    rate: Callable[[int], float],
    minutes: int,
    location: str = "WH-PARIS",
    campaign: Callable[[int], str | None] = lambda m: None,
    watcher: SurgeWatcher | None = None,
    start: int = 0,
) -> tuple[SurgeWatcher, list[dict[str, Any]]]:
    """Feed `rate(minute)` units per minute, spread over each minute, for `minutes` minutes."""
    w = watcher or SurgeWatcher(SurgeState(), CFG)
    out: list[dict[str, Any]] = []
    for m in range(start, start + minutes):
        units = int(rate(m))
        for i in range(units):
            ts = T0 + m * MINUTE + (i * MINUTE) // max(units, 1)
            w.on_charged(Charged(ts, location, f"SKU-{i % 7}", 1, campaign(m), 100), out)
        w.on_tick(T0 + (m + 1) * MINUTE - 1, out)
    return w, out


def surge_at(start: int, level: float, base: float = 5.0, end: int | None = None) -> Callable[[int], float]:
    return lambda m: level if start <= m < (end if end is not None else 10**9) else base


def test_no_alert_on_a_calm_location() -> None:
    _, out = drive(lambda m: 5 + (m % 3), 300)
    assert out == []


def test_no_alert_before_a_full_baseline_of_history() -> None:
    # Busy from the first minute: against the floor it would look like a surge.
    _, out = drive(lambda m: 40, 30)
    assert out == []


def test_threshold_crossing_opens_within_minutes_of_the_surge() -> None:
    _, out = drive(surge_at(90, 40), 100, campaign=lambda m: "cm-42" if m >= 90 else None)
    opens = [m for m in out if m["status"] == "open"]
    assert len(opens) == 1
    a = opens[0]
    minute = (a["ts"] - T0) // MINUTE
    assert 90 < minute <= 95
    assert a["kind"] == "order_surge" and a["location"] == "WH-PARIS"
    assert a["alert_id"] == f"WH-PARIS-{a['ts']}"
    assert a["ratio"] >= CFG.surge_ratio and a["baseline_units_per_min"] == 5.0
    assert a["campaign_ids"] == ["cm-42"] and 0 < a["campaign_share"] <= 1
    expected_staff = math.ceil((a["units_per_min"] * 60 - 5.0 * 60) / CFG.units_per_staff_hour)
    assert a["recommended_extra_staff"] == expected_staff
    assert a["top_skus"][0]["atp"] == 100 and a["top_skus"][0]["minutes_to_stockout"] > 0
    assert set(a) >= {
        "alert_id",
        "kind",
        "status",
        "ts",
        "location",
        "units_per_min",
        "baseline_units_per_min",
        "ratio",
        "campaign_share",
        "campaign_ids",
        "top_skus",
        "recommended_extra_staff",
    }


def test_min_units_keeps_a_tiny_location_quiet() -> None:
    # From 1/min to 5/min is a ratio of 5, but 25 units in the window are under 50.
    _, out = drive(surge_at(90, 5, base=1), 120)
    assert out == []


def test_escalation_sends_an_update_when_the_ratio_doubles() -> None:
    rate = lambda m: 5 if m < 90 else (20 if m < 110 else 60)  # noqa: E731
    _, out = drive(rate, 130)
    assert [m["status"] for m in out] == ["open", "update"]
    assert out[1]["ratio"] >= 2 * out[0]["ratio"] - 0.01
    assert out[1]["alert_id"] == out[0]["alert_id"]


def test_resolution_after_a_full_window_below_one_and_a_half() -> None:
    _, out = drive(surge_at(90, 40, end=150), 200)
    statuses = [m["status"] for m in out]
    assert statuses[0] == "open" and statuses[-1] == "resolved" and statuses.count("resolved") == 1
    resolved_min = (out[-1]["ts"] - T0) // MINUTE
    # The window (5 min) must first drain of surge minutes, then stay below 1.5 for 5 more.
    assert 150 + 5 <= resolved_min <= 150 + 12
    assert out[-1]["alert_id"] == out[0]["alert_id"]


def test_a_sustained_surge_stays_open_against_the_pre_surge_baseline() -> None:
    _, out = drive(surge_at(90, 40, end=270), 280)
    statuses = [m["status"] for m in out]
    # The window fills over 5 minutes, so the ratio doubles once after the open.
    assert statuses.count("open") == 1 and "resolved" not in statuses


def test_hovering_around_the_threshold_gives_one_alert_not_dozens() -> None:
    rate = lambda m: 10 if m < 90 else (28 if m % 2 else 33)  # noqa: E731
    _, out = drive(rate, 240)
    assert [m["status"] for m in out] == ["open"]


def test_one_open_alert_per_location_and_locations_are_independent() -> None:
    w, out1 = drive(surge_at(90, 40), 100, location="WH-PARIS")
    _, out2 = drive(lambda m: 5, 100, location="WH-LYON", watcher=SurgeWatcher(SurgeState(), CFG))
    assert [m["location"] for m in out1 if m["status"] == "open"] == ["WH-PARIS"]
    assert out2 == []


def test_late_events_count_within_lateness_and_are_refused_beyond_the_horizon() -> None:
    w, _ = drive(lambda m: 5, 80)
    out: list[dict[str, Any]] = []
    now_min = 80
    before = sum(b.units for b in w.state.locations["WH-PARIS"].window.buckets)
    w.on_charged(Charged(T0 + (now_min - 2) * MINUTE, "WH-PARIS", "A", 3, None, 5), out)
    assert sum(b.units for b in w.state.locations["WH-PARIS"].window.buckets) == before + 3
    w.on_charged(Charged(T0, "WH-PARIS", "A", 3, None, 5), out)
    assert w.late == 1


def test_a_location_quiet_for_an_hour_then_surging_alerts_within_minutes() -> None:
    rate = lambda m: 2 if m < 180 else (0 if m < 250 else 40)  # noqa: E731
    _, out = drive(rate, 300)
    opens = [a for a in out if a["status"] == "open"]
    assert len(opens) == 1 and 250 < (opens[0]["ts"] - T0) // MINUTE <= 255


def test_a_new_location_can_surge_once_the_stream_has_a_baseline_of_time() -> None:
    w, _ = drive(lambda m: 5, 90, location="WH-PARIS")
    _, out = drive(lambda m: 40, 10, location="WH-NEW", watcher=w, start=90)
    assert [(a["location"], a["status"]) for a in out][0] == ("WH-NEW", "open")
    assert {a["location"] for a in out} == {"WH-NEW"}


@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(-5, 45), st.integers(-5, 45))
def test_a_span_is_exactly_the_buckets_between_its_minutes(minutes: list[int], first: int, last: int) -> None:
    w = MinuteWindow(20)
    base = T0 // MINUTE
    for m in minutes:
        w.add((base + m) * MINUTE, 1, None, None, (base + max(minutes)) * MINUTE)
    got = [b.minute - base for b in w.span(base + first, base + last)]
    assert got == [b.minute - base for b in w.buckets if first <= b.minute - base <= last]
    assert got == sorted(got)
