"""The live flow publishes stock views only when asked to (the deliverers' catalog feed)."""

from __future__ import annotations

import dataclasses

from stockguard.config.settings import Settings
from stockguard.live import build_live_flow


def step_ids(settings: Settings) -> set[str]:
    flow = build_live_flow(settings, recovery=False)
    return {s.step_id.split(".", 1)[1] for s in flow.substeps}


def test_stock_views_are_built_and_written_only_when_published() -> None:
    on = step_ids(Settings())
    off = step_ids(dataclasses.replace(Settings(), publish_stock_views=False))
    assert "pick_views" in on
    # Without a view sink that wants them, no stock view is built at all.
    assert "pick_views" not in off
    assert {"decide_triggers", "monitor_skus", "write_kafka"} <= off
