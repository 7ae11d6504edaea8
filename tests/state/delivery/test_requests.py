"""The vendor request builders of the deliverers: shapes and batch limits from the vendors' docs."""

from __future__ import annotations

from typing import Any

import pytest

from stockguard.state.delivery import braze, klaviyo, shoppingfeed

APPROVED: dict[str, Any] = {
    "trigger_id": "t-1",
    "ts": 1764547561642,
    "campaign_id": "cm-42",
    "customer_id": "c-1",
    "kind": "cart_abandonment",
    "channel": "email",
    "skus": ["TEE-BLUE-M"],
    "consent": True,
    "decision": "retarget",
    "original_skus": ["TEE-RED-M"],
    "substitutions": [{"from": "TEE-RED-M", "to": "TEE-BLUE-M", "reason": "out_of_stock"}],
    "decided_ts": 1764547561700,
}
RETRACTED: dict[str, Any] = {
    "trigger_id": "t-1",
    "customer_id": "c-1",
    "campaign_id": "cm-42",
    "sku": "TEE-BLUE-M",
    "reason": "out_of_stock",
    "detail": "ATP 0",
    "ts": 1764550000000,
}


def test_klaviyo_events_are_json_api_with_unique_ids_per_kind() -> None:
    body = klaviyo.event_body("approved", APPROVED)
    attrs = body["data"]["attributes"]
    assert body["data"]["type"] == "event"
    assert attrs["unique_id"] == "t-1:approved"
    assert attrs["time"] == "2025-12-01T00:06:01.642Z"
    assert attrs["metric"] == {"data": {"type": "metric", "attributes": {"name": "StockGuard Trigger Approved"}}}
    assert attrs["profile"] == {"data": {"type": "profile", "attributes": {"external_id": "c-1"}}}
    assert attrs["properties"] == {
        k: APPROVED[k]
        for k in ("trigger_id", "decision", "kind", "campaign_id", "channel", "skus", "original_skus", "substitutions")
    }
    retracted = klaviyo.event_body("retracted", RETRACTED)["data"]["attributes"]
    assert retracted["unique_id"] == "t-1:retracted"
    assert retracted["metric"]["data"]["attributes"]["name"] == "StockGuard Trigger Retracted"
    assert retracted["properties"]["sku"] == "TEE-BLUE-M"
    with pytest.raises(ValueError):
        klaviyo.event_body("suppressed", APPROVED)


def test_klaviyo_headers_carry_the_key_and_the_revision() -> None:
    h = klaviyo.headers("pk_test", "2026-07-15")
    assert h["Authorization"] == "Klaviyo-API-Key pk_test" and h["revision"] == "2026-07-15"
    assert h["Content-Type"] == "application/vnd.api+json"


def test_klaviyo_variant_jobs_hold_at_most_100_variants() -> None:
    atp = {f"SKU-{i}": i - 5 for i in range(250)}
    jobs = klaviyo.variant_jobs(atp)
    sizes = [len(j["data"]["attributes"]["variants"]["data"]) for j in jobs]
    assert sizes == [100, 100, 50]
    first = jobs[0]["data"]["attributes"]["variants"]["data"][0]
    assert first == {
        "type": "catalog-variant",
        "id": "$custom:::$default:::SKU-0",
        "attributes": {"inventory_quantity": 0, "inventory_policy": 1},
    }
    assert jobs[0]["data"]["type"] == "catalog-variant-bulk-update-job"


def test_braze_sends_group_by_campaign_at_most_50_recipients_and_report_the_unmapped() -> None:
    msgs = [dict(APPROVED, trigger_id=f"t-{i}", customer_id=f"c-{i}") for i in range(120)]
    msgs.append(dict(APPROVED, trigger_id="t-x", campaign_id="cm-unknown"))
    bodies, unmapped = braze.trigger_sends(msgs, {"cm-42": "braze-campaign-1"})
    assert [len(b["recipients"]) for b in bodies] == [50, 50, 20]
    assert {b["campaign_id"] for b in bodies} == {"braze-campaign-1"}
    assert bodies[0]["recipients"][0] == {
        "external_user_id": "c-0",
        "trigger_properties": {
            "trigger_id": "t-0",
            "decision": "retarget",
            "kind": "cart_abandonment",
            "skus": ["TEE-BLUE-M"],
            "substitutions": APPROVED["substitutions"],
        },
    }
    assert [m["trigger_id"] for m in unmapped] == ["t-x"]


def test_braze_retractions_are_exit_events_75_a_call_and_catalog_patches_50() -> None:
    tracks = braze.retraction_tracks([dict(RETRACTED, trigger_id=f"t-{i}") for i in range(80)])
    assert [len(t["events"]) for t in tracks] == [75, 5]
    event = tracks[0]["events"][0]
    assert (event["name"], event["external_id"], event["time"]) == (
        "stockguard_trigger_retracted",
        "c-1",
        "2025-12-01T00:46:40.000Z",
    )
    patches = braze.catalog_patches({f"SKU-{i}": 3 for i in range(120)} | {"NEG": -2})
    assert [len(p["items"]) for p in patches] == [50, 50, 21]
    assert {"id": "NEG", "inventory": 0} in patches[-1]["items"]


def test_shoppingfeed_inventory_puts_hold_at_most_100_references() -> None:
    puts = shoppingfeed.inventory_puts({f"SKU-{i}": i for i in range(205)})
    assert [len(p["inventory"]) for p in puts] == [100, 100, 5]
    assert puts[0]["inventory"][0] == {"reference": "SKU-0", "quantity": 0}
