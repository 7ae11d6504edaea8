"""Deterministic simulator of a Cyber Monday day of stockguard input events.

The simulator is a pure generator: given a :class:`SimConfig` it yields
``(topic, key, value)`` tuples in non-decreasing event time (``ts``) order, and
the same configuration always yields exactly the same sequence. It uses only
the standard library and a private ``random.Random(seed)``, never the clock.

The day it tells:

* At ``start_ts`` the catalog (``catalog.products``), the campaigns
  (``marketing.campaigns``) and one stock ``level`` per stocked
  (sku, location) (``inventory.stock``); ``oos_fraction`` of the skus start
  sold out (``on_hand == reserved``).
* Shopper sessions on ``shop.clickstream`` following a diurnal curve
  (views, searches, wishlists, carts), some ending in orders on
  ``shop.orders`` (about 3 % later cancelled) that deplete the simulator's own
  stock book, so popular skus sell out during the day.
* The WMS re-syncs a quarter of the stock levels every 2 h (shipping part of
  the reserved units; the ATP it reports is exactly the ATP implied by the
  events before it), plus receipts, returns and damages as ``adjustment``
  events and a large restock receipt of sold-out skus at hour 16 (of every
  simulated day).
* Marketing triggers: cart and browse abandonment, a promotion blast during
  the campaign, back-in-stock after the restock (for the shoppers who
  wishlisted the skus, plus a few for skus that were not restocked), price
  drops; about 5 % without consent and a few deliberate duplicates.
* During the campaign window traffic, conversion and basket size rise and
  most orders are fulfilled from ``surge_location``, so its ordered units per
  minute are several times (well above 5x) their baseline.
* About ``bad_fraction`` of the messages after the initial snapshot are
  malformed: raw text that is not JSON, or a dict that violates the contract.

Example:
    >>> from stockguard.sim import SimConfig, simulate
    >>> events = list(simulate(SimConfig(hours=1.0)))
    >>> events[0][0]
    'catalog.products'
"""

from stockguard.sim.config import (
    CAMPAIGN_ABANDON,
    CAMPAIGN_CYBER,
    CAMPAIGN_LIFECYCLE,
    TOPIC_CAMPAIGNS,
    TOPIC_CATALOG,
    TOPIC_CLICKSTREAM,
    TOPIC_ORDERS,
    TOPIC_STOCK,
    TOPIC_TRIGGERS,
    Message,
    SimConfig,
)
from stockguard.sim.day import simulate

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
    "simulate",
]
