"""Replays of a calm day and of a campaign surge: surge, drain and insight messages end to end."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from stockguard.cli import main
from stockguard.config.settings import load_settings
from stockguard.connectors.files import write_replay
from stockguard.demo import run_demo
from tests.helpers import MIN, T0, level, product

SKUS = [f"TEE-{c}-{s}" for c in ("RED", "BLUE", "GRN") for s in ("S", "M", "L")]
SURGE_START = 120  # minutes after T0
SURGE_END = 180


def day(surge: bool, seed: int = 1) -> list[tuple[str, Any, Any]]:
    rng = random.Random(seed)
    msgs: list[tuple[str, Any, Any]] = []
    for sku in SKUS:
        msgs.append(("catalog.products", sku, product(sku, group="tee", size=sku[-1])))
        for loc in ("WH-PARIS", "WH-LYON"):
            msgs.append(("inventory.stock", sku, level(sku, 5000, location=loc)))
    # A small sku the campaign will drain, and an offline one with stock.
    msgs.append(("catalog.products", "HOT-M", product("HOT-M", group="hot")))
    msgs.append(("inventory.stock", "HOT-M", level("HOT-M", 60, location="WH-PARIS")))
    msgs.append(("catalog.products", "HIDDEN-M", product("HIDDEN-M", group="hid", online=False)))
    msgs.append(("inventory.stock", "HIDDEN-M", level("HIDDEN-M", 300, location="WH-LYON")))
    n = 0
    for minute in range(0, 300):
        for loc in ("WH-PARIS", "WH-LYON"):
            in_surge = surge and loc == "WH-PARIS" and SURGE_START <= minute < SURGE_END
            units = rng.randint(45, 55) if in_surge else rng.randint(4, 8)
            for i in range(units):
                n += 1
                ts = T0 + minute * MIN + i * (MIN // (units + 1))
                sku = "HOT-M" if in_surge and i % 10 == 0 else rng.choice(SKUS)
                line = {"sku": sku, "qty": 1, "unit_price": 20.0, "location": loc}
                o: dict[str, Any] = {
                    "event_id": f"o{n}",
                    "ts": ts,
                    "order_id": f"o{n}",
                    "status": "placed",
                    "customer_id": f"c{n % 997}",
                    "lines": [line],
                }
                if in_surge:
                    o["campaign_id"] = "cm-cyber"
                msgs.append(("shop.orders", o["order_id"], o))
        for sku in [*SKUS, "HOT-M", "HIDDEN-M"]:
            if minute % 30 == 0:
                msgs.append(
                    (
                        "shop.clickstream",
                        "c1",
                        {
                            "event_id": f"v{minute}{sku}",
                            "ts": T0 + minute * MIN + 1,
                            "type": "product_view",
                            "customer_id": "c1",
                            "session_id": "s",
                            "sku": sku,
                            "qty": 1,
                        },
                    )
                )
    msgs.sort(key=lambda m: m[2]["ts"])
    return msgs


def replay(tmp: Path, msgs: list[tuple[str, Any, Any]]) -> dict[str, list[dict[str, Any]]]:
    src = tmp / "in.jsonl"
    write_replay(src, msgs)
    out = tmp / "out"
    assert main(["replay", str(src), "--out", str(out)]) == 0
    res = {}
    for topic in ("ops.surge-alerts", "merch.insights"):
        p = out / f"{topic}.jsonl"
        res[topic] = [orjson.loads(x) for x in p.read_bytes().splitlines()] if p.exists() else []
    return res


def test_a_calm_day_raises_no_surge(tmp_path: Path) -> None:
    got = replay(tmp_path, day(surge=False))
    assert [a for a in got["ops.surge-alerts"] if a["kind"] == "order_surge"] == []
    assert [a for a in got["ops.surge-alerts"] if a["kind"] == "stock_drain"] == []


def test_a_campaign_surge_alerts_the_surging_location_only(tmp_path: Path) -> None:
    got = replay(tmp_path, day(surge=True))
    surges = [a for a in got["ops.surge-alerts"] if a["kind"] == "order_surge"]
    assert {a["location"] for a in surges} == {"WH-PARIS"}
    statuses = [a["status"] for a in surges]
    assert statuses.count("open") == 1 and statuses[-1] == "resolved" and statuses.count("resolved") == 1
    assert set(statuses) <= {"open", "update", "resolved"}
    opened = (surges[0]["ts"] - T0) // MIN
    assert SURGE_START < opened <= SURGE_START + 5
    resolved = (surges[-1]["ts"] - T0) // MIN
    assert SURGE_END < resolved <= SURGE_END + 15
    assert surges[0]["campaign_ids"] == ["cm-cyber"] and surges[0]["campaign_share"] > 0.5
    assert surges[0]["recommended_extra_staff"] > 0
    assert all(a["alert_id"] == surges[0]["alert_id"] for a in surges)


def test_the_campaign_drains_the_small_sku_and_the_offline_one_is_reported(tmp_path: Path) -> None:
    got = replay(tmp_path, day(surge=True))
    drains = [a for a in got["ops.surge-alerts"] if a["kind"] == "stock_drain"]
    assert [(d["sku"], d["status"], d["location"]) for d in drains] == [("HOT-M", "open", "WH-PARIS")]
    assert SURGE_START <= (drains[0]["ts"] - T0) // MIN < SURGE_END
    invisible = [i for i in got["merch.insights"] if i["kind"] == "invisible_in_stock"]
    assert [i["sku"] for i in invisible] == ["HIDDEN-M"]


@pytest.mark.timeout(300)
def test_the_demo_shows_a_surge_alert(tmp_path: Path) -> None:
    buf = io.StringIO()
    assert run_demo(load_settings(env={}), seed=42, speed=1e6, out_dir=tmp_path, stream=buf) == 0
    alerts = [orjson.loads(x) for x in (tmp_path / "ops.surge-alerts.jsonl").read_bytes().splitlines()]
    assert any(a["kind"] == "order_surge" and a["status"] == "open" for a in alerts)
    text = buf.getvalue()
    assert "surge alerts" in text and "order_surge open" in text
    # Drain alerts of the demo day: forecasts made before the stock-out, and within the
    # documented volume per location (surge.drain_max_per_window in any drain_window).
    cfg = load_settings(env={}).surge
    drains = [a for a in alerts if a["kind"] == "stock_drain" and a["status"] == "open"]
    for d in drains:
        assert all(t["atp"] > 0 and (t["minutes_to_stockout"] or 0) > 0 for t in d["top_skus"]), d
    for loc in {d["location"] for d in drains}:
        times = sorted(d["ts"] for d in drains if d["location"] == loc)
        for i, t in enumerate(times):
            assert sum(1 for u in times[i:] if u < t + cfg.drain_window) <= cfg.drain_max_per_window
