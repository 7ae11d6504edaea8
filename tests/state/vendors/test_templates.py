"""Klaviyo and Braze webhook bodies (our pasted template) to triggers."""

from __future__ import annotations

import pytest

from stockguard.state.vendors import braze, klaviyo, templates
from stockguard.state.vendors.common import MappingError, validate
from tests.state.vendors.fixtures import fixture

ARRIVED = 1_749_543_000_123


def test_a_klaviyo_flow_webhook_is_a_trigger_with_every_field() -> None:
    out = klaviyo.trigger(fixture("klaviyo_flow_webhook.json")["body"], ARRIVED, True)
    validate(out)
    assert out.kind == "triggers" and out.key == "115310627314723954"
    assert out.value == {
        "trigger_id": "kl-01JXB8Q2M3N4P5R6S7T8V9W0XY",
        "ts": ARRIVED,
        "campaign_id": "cm-42",
        "customer_id": "115310627314723954",
        "kind": "back_in_stock",
        "channel": "email",
        "skus": ["TEE-RED-M", "TEE-BLUE-M"],
        "consent": True,
    }


def test_a_braze_webhook_is_a_trigger() -> None:
    out = braze.trigger(fixture("braze_webhook.json")["body"], ARRIVED, True)
    validate(out)
    assert out.value["trigger_id"] == "6848d3e1f0a1b2c3d4e5f607-65f1a2b3c4d5e6f7a8b9c0d1"
    assert out.value["kind"] == "cart_abandonment"


@pytest.mark.parametrize("name", ["klaviyo_flow_webhook.json", "braze_webhook.json"])
def test_the_email_variant_gets_a_stable_id_and_the_consent_default(name: str) -> None:
    body = fixture(name)["body_email_variant"]
    system = "klaviyo" if name.startswith("klaviyo") else "braze"
    first = templates.trigger(system, body, ARRIVED, False)
    validate(first)
    assert first.value["customer_id"] == "jane.doe@example.com"
    assert first.value["skus"] == ["TEE-RED-M", "TEE-BLUE-M"]
    assert first.value["consent"] is False  # the setting, as the body has none
    # A retry in the same minute dedups; the next minute is a new trigger.
    minute_start = ARRIVED - ARRIVED % 60_000
    assert (
        templates.trigger(system, body, minute_start + 59_999, False).value["trigger_id"] == first.value["trigger_id"]
    )
    assert (
        templates.trigger(system, body, minute_start + 60_000, False).value["trigger_id"] != first.value["trigger_id"]
    )
    other = "braze" if system == "klaviyo" else "klaviyo"
    assert templates.trigger(other, body, ARRIVED, False).value["trigger_id"] != first.value["trigger_id"]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("FALSE", False), (True, True), ("", True)])
def test_rendered_consent_strings_are_read(raw: object, expected: bool) -> None:
    body = dict(fixture("klaviyo_flow_webhook.json")["body"], consent=raw)
    assert klaviyo.trigger(body, ARRIVED, True).value["consent"] is expected


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"customer_id": None}, "customer_id or email"),
        ({"skus": []}, "skus"),
        ({"skus": " , "}, "skus: empty"),
        ({"skus": {"a": 1}}, "skus"),
        ({"campaign_id": ""}, "campaign_id"),
        ({"kind": None}, "kind"),
        ({"consent": "maybe"}, "consent"),
    ],
)
def test_a_template_that_cannot_map_says_why(change: dict[str, object], reason: str) -> None:
    body = dict(fixture("klaviyo_flow_webhook.json")["body"], **change)
    with pytest.raises(MappingError, match=reason):
        klaviyo.trigger(body, ARRIVED, True)


def test_an_unknown_kind_fails_the_contract_check() -> None:
    body = dict(fixture("klaviyo_flow_webhook.json")["body"], kind="spam")
    with pytest.raises(MappingError, match="triggers"):
        validate(klaviyo.trigger(body, ARRIVED, True))
