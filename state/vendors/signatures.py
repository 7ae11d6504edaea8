"""Verify that a webhook comes from who it says: HMACs and shared tokens, in constant time.

Every check returns None when the request is authentic, else the reason (for the count
and the 401), never the secret nor any of the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["shopify", "stripe", "token"]


def shopify(body: bytes, header: str | None, secret: str) -> str | None:
    """Check `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body."""
    if not secret:
        return "shopify.webhook_secret is not set"
    if not header:
        return "no X-Shopify-Hmac-Sha256"
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, header.strip().encode()):
        return "X-Shopify-Hmac-Sha256 does not match"
    return None


def stripe(body: bytes, header: str | None, secret: str, now_s: float, tolerance_s: float) -> str | None:
    """Check `Stripe-Signature: t=...,v1=...[,v1=...]`: hex HMAC-SHA256 of `t.body`.

    Any `v1` may match (Stripe sends one per active secret while a secret is rolled);
    `t` must be within the tolerance of now, either way, so a captured request cannot be
    replayed later.
    """
    if not secret:
        return "stripe.webhook_secret is not set"
    if not header:
        return "no Stripe-Signature"
    t: str | None = None
    v1: list[str] = []
    for part in header.split(","):
        k, _, v = part.strip().partition("=")
        if k == "t":
            t = v
        elif k == "v1":
            v1.append(v)
    if t is None or not t.isdigit() or not v1:
        return "Stripe-Signature without t or v1"
    if abs(now_s - int(t)) > tolerance_s:
        return "Stripe-Signature timestamp outside the tolerance"
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    # Compare with every v1, without stopping at the first match: constant time in the match.
    matched = False
    for candidate in v1:
        matched |= hmac.compare_digest(expected, candidate.encode())
    return None if matched else "Stripe-Signature does not match"


def token(given: str | None, expected: str, setting: str, carrier: str) -> str | None:
    """Check a shared token: `setting` names our side, `carrier` where the sender puts it."""
    if not expected:
        return f"{setting} is not set"
    if not given:
        return f"no {carrier}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return f"{carrier} does not match"
    return None
