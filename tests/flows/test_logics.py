"""The logic shells: what a stateful step does with a failure and with a recovery store."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from stockguard.config.settings import Settings
from stockguard.flows.logics import CampaignLogic, MonitorLogic
from stockguard.flows.records import CampaignView, OutRecord
from stockguard.state.models import parse_order, parse_stock
from stockguard.state.monitor import monitor_partition_of
from tests.helpers import MIN, T0, level, order

S = Settings()


def test_an_event_the_campaign_tracker_fails_on_is_dead_lettered_and_the_view_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logic = CampaignLogic(S, None, keep=False)

    class Broken:
        """The tracker, failing on orders (a wrapper: a compiled class cannot be patched)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def on_order(self, *_args: Any) -> None:
            raise ZeroDivisionError("a bug")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(logic, "tracker", Broken(logic.tracker))
    good = parse_order(order("o1", "c1", [("A", 1)], ts=T0 + MIN, campaign_id="cm"))
    out, _ = logic.on_batch([good])
    (dead,) = [r for r in out if isinstance(r, OutRecord)]
    msg = orjson.loads(dead.value)
    assert dead.topic == S.topics.dlq and msg["topic"] == "stockguard:track_campaigns"
    assert msg["error"] == "internal: ZeroDivisionError in track_campaigns: a bug"
    monkeypatch.undo()
    out, _ = logic.on_batch([good])
    assert not [r for r in out if isinstance(r, OutRecord)]
    assert all(isinstance(v, CampaignView) for v in out)


def monitor_snapshot(partitions: int) -> tuple[int, bytes]:
    """Return a monitor partition's index and its snapshot, written with `partitions`."""
    s = dataclasses.replace(S, surge=dataclasses.replace(S.surge, monitor_partitions=partitions))
    skus = [f"SKU-{i}" for i in range(200)]
    index = monitor_partition_of(skus[0], partitions)
    logic = MonitorLogic(s, None, keep=True)
    logic.on_batch([parse_stock(level(sku, 5)) for sku in skus if monitor_partition_of(sku, partitions) == index])
    snap = logic.snapshot()
    assert snap is not None
    return index, snap


def test_a_monitor_store_resumes_with_its_partition_count() -> None:
    index, snap = monitor_snapshot(4)
    resumed = MonitorLogic(S, snap, keep=True)
    assert resumed.monitor is not None and resumed.monitor.state.index == index
    assert len(resumed.monitor.state.skus) > 20


def test_a_monitor_store_of_another_partition_count_is_refused_with_the_fix() -> None:
    _index, snap = monitor_snapshot(7)
    with pytest.raises(RuntimeError, match=r"written with surge.monitor_partitions=7, this run has 4"):
        MonitorLogic(S, snap, keep=True)
