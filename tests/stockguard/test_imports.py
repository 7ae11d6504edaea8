"""`stockguard import ga4`: a BigQuery export to a replay file that the flow reads."""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from stockguard.cli import main
from tests.state.vendors.fixtures import FIXTURES

EXPORT = FIXTURES / "ga4_export.jsonl"
CID = "115310627314723954"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def test_an_export_in_any_order_and_files_becomes_one_replay_file_in_event_time(tmp_path: Path) -> None:
    rows = EXPORT.read_bytes().splitlines()
    random.Random(7).shuffle(rows)
    # bq extract of a large table writes several files, gzipped when asked.
    (tmp_path / "part-0.json").write_bytes(b"\n".join(rows[:4]) + b"\n")
    with gzip.open(tmp_path / "part-1.json.gz", "wb") as fh:
        fh.write(b"\n".join(rows[4:]) + b"\n\n")
    out = tmp_path / "day.jsonl"
    rc = main(["import", "ga4", str(tmp_path / "part-0.json"), str(tmp_path / "part-1.json.gz"), "--out", str(out)])
    assert rc == 0
    lines = _lines(out)
    assert [(d["topic"], d["value"].get("type", d["value"].get("status"))) for d in lines] == [
        ("shop.clickstream", "search"),
        ("shop.clickstream", "product_view"),
        ("shop.clickstream", "wishlist"),
        ("shop.clickstream", "add_to_cart"),
        ("shop.clickstream", "add_to_cart"),
        ("shop.clickstream", "remove_from_cart"),
        ("shop.orders", "placed"),
    ]
    ts = [d["value"]["ts"] for d in lines]
    assert ts == sorted(ts)
    assert (tmp_path / "day.rejects.jsonl").read_bytes() == b""


def test_unmappable_rows_go_to_the_rejects_file_with_their_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = EXPORT.read_bytes().splitlines()
    bad_item = orjson.loads(rows[2])
    bad_item["items"] = [{"item_name": "no id"}]
    export = tmp_path / "export.jsonl"
    export.write_bytes(b"\n".join([*rows, b"{not json", orjson.dumps(bad_item)]) + b"\n")
    out, rejects = tmp_path / "day.jsonl", tmp_path / "bad.jsonl"
    assert main(["import", "ga4", str(export), "--out", str(out), "--rejects", str(rejects)]) == 0
    bad = _lines(rejects)
    assert [(b["line"], str(b["reason"]).split(" ")[0]) for b in bad] == [(9, "not"), (10, "items[0].item_id:")]
    assert bad[1]["raw"] == orjson.dumps(bad_item).decode()
    printed = capsys.readouterr().out
    assert "rows rejected" in printed and "2 (see" in printed
    assert len(_lines(out)) == 7


def test_a_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "ga4", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "d.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_imported_day_replays_and_its_purchase_reaches_the_decisions(tmp_path: Path) -> None:
    day = tmp_path / "day.jsonl"
    assert main(["import", "ga4", str(EXPORT), "--out", str(day)]) == 0
    purchase_ts = _lines(day)[-1]["value"]["ts"]
    # A browse-abandonment trigger for what she bought an hour later: the GA4 purchase
    # must have reached the flow, for this customer and sku, to suppress it.
    trigger = {
        "trigger_id": "t-after-purchase",
        "ts": purchase_ts + 3_600_000,
        "campaign_id": "cm-42",
        "customer_id": CID,
        "kind": "browse_abandonment",
        "channel": "email",
        "skus": ["TEE-RED-M"],
        "consent": True,
    }
    with day.open("ab") as fh:
        fh.write(orjson.dumps({"topic": "marketing.triggers", "key": CID, "value": trigger}) + b"\n")
    out = tmp_path / "out"
    assert main(["replay", str(day), "--out", str(out)]) == 0
    suppressed = _lines(out / "marketing.triggers.suppressed.jsonl")
    assert [(s["trigger_id"], s["reason"]) for s in suppressed] == [("t-after-purchase", "already_purchased")]
    assert not (out / "stockguard.dlq.jsonl").exists() or _lines(out / "stockguard.dlq.jsonl") == []
