"""How a deliverer paces itself against a vendor: token buckets, backoff, a circuit.

Pure and clocked by the caller (seconds, monotonic), so the same rules run in the
deliverer and in tests without sleeping:

- `TokenBucket`: `rate` tokens a second up to `burst`; `wait(n)` says how long until `n`
  are there (0 when now), `take(n)` spends them. Vendors' documented tiers are the
  defaults of the settings that build these (Klaviyo's 350/s burst, 3,500/min steady).
- `Backoff`: the delay before retry `attempt` (1, 2, ...): a vendor's own wait when it
  gave one (`Retry-After`, `X-RateLimit-Wait`), else exponential from `base` to `cap`
  with full jitter (a random share of it, so retrying clients do not stay in step).
- `Circuit`: after `threshold` failures in a row it opens: no request for `cooldown`
  seconds; then one probe is let through (half-open), and its success closes it again,
  its failure reopens it. A vendor that is down is not hammered, and delivery resumes
  by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Backoff", "Circuit", "TokenBucket", "reset_wait", "retry_after"]

State = Literal["closed", "open", "half_open"]
_MAX_VENDOR_WAIT: Final = 3600.0


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; starts full."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def wait(self, now: float, n: float = 1.0) -> float:
        """Return the seconds until `n` tokens are there (0: now)."""
        if n > self.burst:
            raise ValueError(f"{n} tokens never fit a bucket of {self.burst}")
        self._refill(now)
        return 0.0 if self.tokens >= n else (n - self.tokens) / self.rate

    def take(self, now: float, n: float = 1.0) -> bool:
        """Spend `n` tokens if they are there; tell whether they were."""
        if self.wait(now, n) > 0:
            return False
        self.tokens -= n
        return True


def _header(headers: dict[str, str], name: str) -> float | None:
    """Read a numeric header whatever its case (an HTTP date or junk reads as None)."""
    raw = next((v for k, v in headers.items() if k.lower() == name), None)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def retry_after(headers: dict[str, str]) -> float | None:
    """Read a vendor's wait in seconds (`Retry-After` seconds, or `X-RateLimit-Wait`)."""
    for name in ("retry-after", "x-ratelimit-wait"):
        wait = _header(headers, name)
        if wait is not None and wait >= 0:
            return min(wait, _MAX_VENDOR_WAIT)
    return None  # none, or an HTTP date: our own backoff instead


def reset_wait(headers: dict[str, str], now_epoch_s: float) -> float | None:
    """Read Braze's `X-RateLimit-Reset` (epoch seconds when the window resets) as a wait."""
    reset = _header(headers, "x-ratelimit-reset")
    if reset is None:
        return None
    return min(max(0.0, reset - now_epoch_s), _MAX_VENDOR_WAIT)


@dataclass
class Backoff:
    """Exponential backoff with full jitter, or the vendor's own wait.

    `chance` returns a number in [0, 1): the caller's `random.random` (chance, like the
    clock, is injected, so logic stays reproducible).
    """

    chance: Callable[[], float]
    base: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int, vendor_wait: float | None = None) -> float:
        """Return the seconds to wait before retry `attempt` (1 for the first retry)."""
        if vendor_wait is not None:
            return vendor_wait
        ceiling = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return self.chance() * ceiling


@dataclass
class Circuit:
    """Stop calling a vendor that keeps failing; let one probe through after `cooldown`."""

    threshold: int = 5
    cooldown: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    def state(self, now: float) -> State:
        """Say whether requests may go (closed), may not (open), or one may probe."""
        if self.opened_at is None:
            return "closed"
        if now - self.opened_at < self.cooldown or self.probing:
            return "open"
        return "half_open"

    def allow(self, now: float) -> bool:
        """Tell whether a request may go now (a half-open circuit lets exactly one)."""
        state = self.state(now)
        if state == "half_open":
            self.probing = True
            return True
        return state == "closed"

    def success(self) -> None:
        """Record a success: the circuit closes."""
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self, now: float) -> None:
        """Record a failure (5xx, timeout, refused connection): open at the threshold."""
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at = now
            self.probing = False
