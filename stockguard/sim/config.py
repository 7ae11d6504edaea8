"""Parameters, topics and tuning knobs of the simulated day."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CAMPAIGN_ABANDON",
    "CAMPAIGN_CYBER",
    "CAMPAIGN_LIFECYCLE",
    "TOPIC_CAMPAIGNS",
    "TOPIC_CATALOG",
    "TOPIC_CLICKSTREAM",
    "TOPIC_ORDERS",
    "TOPIC_STOCK",
    "TOPIC_TRIGGERS",
    "Message",
    "SimConfig",
]

TOPIC_CLICKSTREAM = "shop.clickstream"
TOPIC_STOCK = "inventory.stock"
TOPIC_ORDERS = "shop.orders"
TOPIC_CATALOG = "catalog.products"
TOPIC_TRIGGERS = "marketing.triggers"
TOPIC_CAMPAIGNS = "marketing.campaigns"

CAMPAIGN_CYBER = "cm-cyber"
CAMPAIGN_ABANDON = "cm-abandon"
CAMPAIGN_LIFECYCLE = "cm-lifecycle"

Message = tuple[str, str | None, dict[str, Any] | str]
"""One simulated input message: ``(topic, key, value)``."""

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000

_SIZES = ("XS", "S", "M", "L", "XL")
_SIZE_WEIGHTS = (0.6, 1.0, 1.4, 1.3, 0.8)
_COLORS = ("RED", "BLUE", "GRN", "BLK", "WHT", "GREY", "NAVY", "PINK", "BEIGE", "OLIVE")
_COLORS_PER_GROUP = 5
_GROUPS: tuple[tuple[str, str, float], ...] = (
    ("TEE", "tee-basic", 19.9),
    ("HOOD", "hoodie-zip", 49.9),
    ("JEAN", "jeans-slim", 59.9),
    ("SNKR", "sneaker-run", 89.9),
    ("JACK", "jacket-puffer", 129.0),
    ("SOCK", "socks-pack", 9.9),
    ("DRSS", "dress-wrap", 45.0),
    ("SHRT", "shirt-oxford", 39.9),
    ("SWTR", "sweater-wool", 69.9),
    ("LEGG", "leggings-sport", 29.9),
    ("POLO", "polo-pique", 34.9),
    ("CAP", "cap-logo", 15.9),
)
# Relative traffic per hour after start_ts (a European retail day, evening peak).
_DIURNAL = (
    0.35, 0.2, 0.15, 0.12, 0.12, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.15,
    1.25, 1.2, 1.1, 1.05, 1.1, 1.2, 1.4, 1.6, 1.75, 1.6, 1.2, 0.7,
)  # fmt: skip
_DIURNAL_MEAN = sum(_DIURNAL) / len(_DIURNAL)

_EVENTS_PER_SESSION = 5.3  # measured mean clickstream events of a baseline session
_P_CART = 0.32
_P_CART_CAMPAIGN = 0.6
_P_ORDER = 0.6
_P_ORDER_CAMPAIGN = 0.8
_P_CAMPAIGN_SESSION = 0.65  # share of sessions driven by the campaign in its window
_P_EXPLICIT_LOCATION = 0.7
_P_SURGE_LOCATION = 0.4  # baseline share of located lines sent to surge_location
_P_SURGE_LOCATION_CAMPAIGN = 0.85
_P_CANCEL = 0.03
_P_DUPLICATE_TRIGGER = 0.004
_P_CONSENT = 0.95
_CAMPAIGN_DISCOUNT = 0.75
_RESYNC_EVERY_H = 2.0
_RESYNC_SHARE = 0.25
_RESTOCK_H = 16.0
_RESTOCK_SHARE = 0.7
_PROMO_PER_EVENT_HOUR = 1.0  # promotion triggers per hour = this x events_per_hour
_PRICE_DROP_PER_EVENT_HOUR = 0.005
_MAX_WISHLISTERS = 300


@dataclass(frozen=True)
class SimConfig:
    """Parameters of a simulated day.

    Attributes:
        seed: Seed of the private random generator.
        start_ts: Start of the day, epoch ms.
        hours: Length of the simulated period.
        skus: Catalog size (groups x colors x sizes).
        locations: Warehouses holding stock.
        customers: Number of distinct customers.
        oos_fraction: Fraction of skus sold out (ATP 0 everywhere) at the start.
        campaign_start_h: Start of the campaign surge, hours after ``start_ts``.
        campaign_hours: Length of the surge.
        surge_location: Location fulfilling most campaign orders.
        events_per_hour: Baseline clickstream volume; other flows, and the stock, are proportional.
        bad_fraction: Fraction of malformed messages after the initial snapshot.
    """

    seed: int = 42
    start_ts: int = 1764547200000  # 2025-12-01T00:00:00Z, epoch ms
    hours: float = 24.0
    skus: int = 300
    locations: tuple[str, ...] = ("WH-PARIS", "WH-LYON", "WH-LILLE")
    customers: int = 20000
    oos_fraction: float = 0.25
    campaign_start_h: float = 10.0
    campaign_hours: float = 3.0
    surge_location: str = "WH-PARIS"
    events_per_hour: int = 4000
    bad_fraction: float = 0.002
