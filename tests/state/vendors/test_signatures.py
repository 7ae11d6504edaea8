"""Webhook verification against vectors computed with openssl, not with our own code.

printf '%s' BODY | openssl dgst -sha256 -hmac hush -binary | base64
printf '%s' 1764547200.BODY | openssl dgst -sha256 -hmac whsec_test_secret
"""

from __future__ import annotations

from stockguard.state.vendors import signatures

SHOPIFY_BODY = b'{"id":820982911946154508,"email":"jon@example.com"}'
SHOPIFY_HMAC = "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
STRIPE_BODY = b'{"id":"evt_1","type":"checkout.session.completed"}'
STRIPE_T = 1764547200
STRIPE_V1 = "c51811fe39638162b9d215765a1e87955e673b14727356e36c7745afe4d3d03d"


def test_shopify_hmac_matches_the_openssl_vector() -> None:
    assert signatures.shopify(SHOPIFY_BODY, SHOPIFY_HMAC, "hush") is None


def test_shopify_refuses_a_wrong_key_a_tampered_body_and_a_missing_header() -> None:
    assert signatures.shopify(SHOPIFY_BODY, SHOPIFY_HMAC, "hush!") == "X-Shopify-Hmac-Sha256 does not match"
    tampered = SHOPIFY_BODY.replace(b"jon", b"joe")
    assert signatures.shopify(tampered, SHOPIFY_HMAC, "hush") == "X-Shopify-Hmac-Sha256 does not match"
    assert signatures.shopify(SHOPIFY_BODY, None, "hush") == "no X-Shopify-Hmac-Sha256"
    assert signatures.shopify(SHOPIFY_BODY, SHOPIFY_HMAC, "") == "shopify.webhook_secret is not set"


def stripe(
    header: str | None, body: bytes = STRIPE_BODY, now: float = STRIPE_T + 10, secret: str = "whsec_test_secret"
) -> str | None:
    return signatures.stripe(body, header, secret, now, 300)


def test_stripe_signature_matches_the_openssl_vector() -> None:
    assert stripe(f"t={STRIPE_T},v1={STRIPE_V1}") is None


def test_stripe_accepts_any_v1_of_several_and_ignores_other_schemes() -> None:
    other = "0" * 64
    assert stripe(f"t={STRIPE_T},v1={other},v0=abc,v1={STRIPE_V1}") is None
    assert stripe(f"t={STRIPE_T},v1={STRIPE_V1},v1={other}") is None


def test_stripe_refuses_wrong_key_stale_t_tampered_body_and_malformed_headers() -> None:
    good = f"t={STRIPE_T},v1={STRIPE_V1}"
    assert stripe(good, secret="whsec_other") == "Stripe-Signature does not match"
    assert stripe(good, now=STRIPE_T + 301) == "Stripe-Signature timestamp outside the tolerance"
    assert stripe(good, now=STRIPE_T - 301) == "Stripe-Signature timestamp outside the tolerance"
    assert stripe(good, body=STRIPE_BODY + b" ") == "Stripe-Signature does not match"
    # The timestamp is signed: moving it breaks the signature even within the tolerance.
    assert stripe(f"t={STRIPE_T + 1},v1={STRIPE_V1}") == "Stripe-Signature does not match"
    assert stripe(f"v1={STRIPE_V1}") == "Stripe-Signature without t or v1"
    assert stripe(f"t={STRIPE_T}") == "Stripe-Signature without t or v1"
    assert stripe("t=soon,v1=x") == "Stripe-Signature without t or v1"
    assert stripe(None) == "no Stripe-Signature"
    assert stripe(good, secret="") == "stripe.webhook_secret is not set"


def test_shared_tokens() -> None:
    assert signatures.token("s3cret", "s3cret", "klaviyo.webhook_token", "X-Stockguard-Token") is None
    assert signatures.token("s3cre", "s3cret", "klaviyo.webhook_token", "X-Stockguard-Token") == (
        "X-Stockguard-Token does not match"
    )
    assert signatures.token(None, "s3cret", "klaviyo.webhook_token", "X-Stockguard-Token") == "no X-Stockguard-Token"
    assert signatures.token("x", "", "ga4.api_secret", "api_secret") == "ga4.api_secret is not set"
