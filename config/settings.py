"""Build one frozen settings object from defaults, a TOML file and `STOCKGUARD_*` env.

Precedence, lowest first: the defaults below (the contract's), the TOML file, the
environment. Every field of a section is reachable from the environment as
`STOCKGUARD_<SECTION>__<FIELD>` (for example `STOCKGUARD_RULES__CAP_COUNT=2`), top-level
fields as `STOCKGUARD_<FIELD>`. librdkafka properties pass through unchanged from the
`[kafka.properties]` table or from `STOCKGUARD_KAFKA_PROPERTY_<NAME>` where `_` in NAME
stands for `.` (`STOCKGUARD_KAFKA_PROPERTY_SASL_MECHANISM=PLAIN`). The conventional
`KAFKA_BOOTSTRAP_SERVERS` and `REDIS_URL` are honoured too.

Durations are integers of milliseconds, or strings with a unit: `250ms`, `30s`, `5m`,
`16h`, `7d`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BrazeSettings",
    "DeliverySettings",
    "DlqSettings",
    "Ga4Settings",
    "GatewaySettings",
    "InputSettings",
    "KlaviyoSettings",
    "KafkaSettings",
    "RedisSettings",
    "RuleSettings",
    "SecretStr",
    "Settings",
    "SettingsError",
    "ShopifySettings",
    "ShoppingfeedSettings",
    "StripeSettings",
    "SurgeSettings",
    "TopicSettings",
    "load_settings",
    "parse_duration",
    "topic_env",
]

_SECRET_WORDS = (
    "password",
    "secret",
    "token",
    "key.pem",
    "keystore",
    "credential",
    "oauthbearer.config",
    "jaas",
    "keytab",
    "private",
)


class SettingsError(ValueError):
    """Raised for a setting that cannot be understood; never shows secret values."""


class SecretStr:
    """Hold a secret that never shows up in repr, str, logs or errors."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """Return the secret itself, for the one place that needs it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def is_secret_property(name: str) -> bool:
    """Tell whether a librdkafka property name holds a secret."""
    low = name.lower()
    return any(word in low for word in _SECRET_WORDS)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_MS = {None: 1, "ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(value: object) -> int:
    """Turn `16h`, `30s`, `250ms` or a number of milliseconds into milliseconds."""
    if isinstance(value, bool):
        raise SettingsError(f"expected a duration, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    raise SettingsError(f"expected a duration like 5m, 16h or 7d, got {value!r}")


def format_duration(ms: int) -> str:
    """Write milliseconds in the largest whole unit: 86400000 -> 1d, 90000 -> 90s."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _duration(default: int) -> Any:
    return field(default=default, metadata={"duration": True})


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """Name every topic of the contract; the defaults are the contract's."""

    clickstream: str = "shop.clickstream"
    stock: str = "inventory.stock"
    orders: str = "shop.orders"
    products: str = "catalog.products"
    triggers: str = "marketing.triggers"
    campaigns: str = "marketing.campaigns"
    approved: str = "marketing.triggers.approved"
    suppressed: str = "marketing.triggers.suppressed"
    retracted: str = "marketing.triggers.retracted"
    surge_alerts: str = "ops.surge-alerts"
    insights: str = "merch.insights"
    dlq: str = "stockguard.dlq"
    # Not in CONTRACT.md's tables, for `stockguard deliver` (INTEGRATIONS.md "Out"): the
    # newest stock view of each sku (compacted, key sku), and what no vendor would take.
    stock_views: str = "stockguard.stock-views"
    delivery_dlq: str = "stockguard.delivery-dlq"

    def inputs(self) -> tuple[str, ...]:
        """Return the input topic names."""
        return (self.clickstream, self.stock, self.orders, self.products, self.triggers, self.campaigns)

    def outputs(self) -> tuple[str, ...]:
        """Return the output topic names."""
        return (self.approved, self.suppressed, self.retracted, self.surge_alerts, self.insights, self.dlq)

    def delivery(self) -> tuple[str, ...]:
        """Return the topics of the deliverers: stock views and the delivery DLQ."""
        return (self.stock_views, self.delivery_dlq)

    def from_contract(self) -> dict[str, str]:
        """Map each contract (default) topic name to the configured one."""
        default = TopicSettings()
        return {getattr(default, f.name): getattr(self, f.name) for f in dataclasses.fields(self)}


def topic_env(prefix: str) -> dict[str, str]:
    """Return the STOCKGUARD_TOPICS__* variables that prefix every topic (tests, benchmarks)."""
    default = TopicSettings()
    return {
        f"STOCKGUARD_TOPICS__{f.name.upper()}": f"{prefix}{getattr(default, f.name)}"
        for f in dataclasses.fields(TopicSettings)
    }


_H = 3_600_000


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Hold the thresholds of the contract's decision rules."""

    dedup_window: int = _duration(24 * _H)
    cap_count: int = 1
    cap_window: int = _duration(16 * _H)
    purchase_lookback: int = _duration(7 * 24 * _H)
    sends_per_unit: int = 20
    budget_window: int = _duration(24 * _H)
    retract_window: int = _duration(4 * _H)
    # Contract: a sku with no stock event yet is treated as available.
    unknown_stock_available: bool = True
    # Sales velocity for days-of-cover ranking of substitutes.
    velocity_window: int = _duration(24 * _H)
    # How late (event time) a stock delta may arrive after a newer level and still count.
    stock_lateness: int = _duration(5 * 60_000)
    # How long an order is remembered for cancellations and stock attribution.
    order_ttl: int = _duration(7 * 24 * _H)


@dataclass(frozen=True, slots=True)
class SurgeSettings:
    """Hold the thresholds of surge, stock-drain and insight rules."""

    surge_window: int = _duration(5 * 60_000)
    baseline_window: int = _duration(60 * 60_000)
    min_baseline_units_per_min: float = 1.0
    surge_ratio: float = 3.0
    surge_min_units: int = 50
    units_per_staff_hour: float = 60.0
    drain_horizon: int = _duration(120 * 60_000)
    drain_min_campaign_share: float = 0.5
    # Units in the surge window before a drain projection counts: one order is no trend.
    drain_min_units: int = 5
    # At most this many drain `open` messages per location in any `drain_window`; the
    # rest are folded into the next message's top_skus (state/drains.py). 0: no limit.
    drain_max_per_window: int = 3
    drain_window: int = _duration(60 * 60_000)
    # Merchandising insights.
    insight_min_atp: int = 20
    no_views_window: int = _duration(12 * _H)
    insight_min_history: int = _duration(6 * _H)
    overstock_days: float = 60.0
    overstock_min_margin_rate: float = 0.4
    # Sku monitor partitions (drain alerts, insights): fixed, like decision partitions.
    monitor_partitions: int = 4


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Connect to Kafka; `properties` pass through to librdkafka."""

    bootstrap_servers: str = "127.0.0.1:9092"
    properties: Mapping[str, str] = field(default_factory=dict)
    partitions: int = 4
    replication_factor: int = 1
    retention: int = _duration(7 * 24 * _H)
    # Read new topics from the beginning (a recovery snapshot always wins).
    from_beginning: bool = True
    # How long an empty input partition waits before its next (non-blocking) poll.
    idle_poll_ms: float = 1.0
    # Source partitions, each one consumer over its share of the topic partitions. 0: one
    # per worker of the run; fixed for a recovery store (the parts are named after it).
    source_groups: int = 0
    # Producer partitions of the sink; Bytewax spreads them over the workers.
    sink_parts: int = 1
    # Longest wait for acknowledgements at a snapshot while Kafka answers; while it does
    # not, snapshots keep waiting up to `outage_tolerance`.
    flush_timeout: int = _duration(30_000)
    # How long the flow rides through a broker it cannot reach before it exits non-zero.
    outage_tolerance: int = _duration(5 * 60_000)
    # Largest output message (librdkafka's message.max.bytes default; the broker's topic
    # default is 1 MiB): a larger one goes to the DLQ instead of failing the producer.
    max_message_bytes: int = 1_000_000
    # Timestamp-ordered catch-up: how long a source waits for a lagging partition's next
    # message before it hands over what it holds (0: no ordering, arrival order).
    merge_wait: int = _duration(500)
    # Messages a source holds per partition while ordering; a fuller one is paused.
    merge_buffer: int = 5_000

    def client_config(self) -> dict[str, str]:
        """Return the librdkafka configuration, secrets included (never log it)."""
        conf = {"bootstrap.servers": self.bootstrap_servers}
        conf.update(self.properties)
        return conf

    def __repr__(self) -> str:
        shown = {k: ("**********" if is_secret_property(k) else v) for k, v in self.properties.items()}
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, properties={shown!r}, "
            f"partitions={self.partitions})"
        )


@dataclass(frozen=True, slots=True)
class InputSettings:
    """Bound what one input message may be: larger or deeper goes to the DLQ."""

    max_message_bytes: int = 1_000_000
    # orjson reads 1,024 levels but writes 254: a deeper echoed trigger could not be encoded.
    max_json_depth: int = 64


@dataclass(frozen=True, slots=True)
class DlqSettings:
    """Shape the dead-letter records."""

    # `raw` is cut to this many bytes (the record says the original size).
    max_raw_bytes: int = 65_536


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Connect to the Redis read model; the URL may carry a password, so it is secret."""

    url: SecretStr = field(default_factory=lambda: SecretStr("redis://127.0.0.1:6379/0"))
    enabled: bool = False
    prefix: str = "stockguard"
    ttl: int = _duration(7 * 24 * _H)
    # How long each decision stays answerable by the send-time check (`{prefix}:trigger:{id}`).
    decision_ttl: int = _duration(2 * 24 * _H)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Serve the webhooks of the shop's own systems (`stockguard gateway`)."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Larger bodies are refused (413) before they are read whole.
    max_body: int = 1_048_576
    # How long a webhook waits for Kafka to acknowledge its records before a 503. Below
    # Shopify's 5 s: a sender that gives up first counts the delivery as failed anyway.
    produce_timeout: int = _duration(3_000)
    # Retry-After of a 503 (seconds, rounded up).
    retry_after: int = _duration(5_000)
    # A redelivered webhook (same dedup key) within this window maps to nothing new.
    dedup_window: int = _duration(24 * _H)
    # Where dedup keys and the Shopify inventory-item map live: "redis" (redis.url, kept
    # across restarts and shared by gateway processes) or "memory" (this process only).
    state: str = "redis"
    # The token of the send-time check (/v1/*, issue 13); not used by the webhooks.
    api_token: SecretStr = field(default_factory=lambda: SecretStr(""))


@dataclass(frozen=True, slots=True)
class ShopifySettings:
    """Map Shopify webhooks."""

    webhook_secret: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Shopify location id -> our location name, e.g. {"905684977": "WH-PARIS"}.
    locations: Mapping[str, str] = field(default_factory=dict)
    # The product option whose value is the size.
    size_option: str = "Size"


@dataclass(frozen=True, slots=True)
class StripeSettings:
    """Verify Stripe webhooks and fetch checkout line items."""

    webhook_secret: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Largest age of a signature's timestamp.
    tolerance: int = _duration(300_000)
    api_base: str = "https://api.stripe.com"
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Longest wait for Stripe's API before the webhook is answered 503 (Stripe retries).
    api_timeout: int = _duration(10_000)
    # campaign_id of the cart-abandonment triggers made from expired checkouts.
    abandonment_campaign: str = "stripe-abandonment"


@dataclass(frozen=True, slots=True)
class KlaviyoSettings:
    """Take Klaviyo flow webhooks; deliver decisions and stock to Klaviyo."""

    webhook_token: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Klaviyo sends a flow webhook only to profiles its flow filters allowed.
    consent_default: bool = True
    api_base: str = "https://a.klaviyo.com"
    # A private key with events:write and catalogs:write.
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    revision: str = "2026-07-15"
    approved_metric: str = "StockGuard Trigger Approved"
    retracted_metric: str = "StockGuard Trigger Retracted"
    # A sku's stock is sent at most once per interval (its newest ATP then).
    stock_interval: int = _duration(60_000)
    # Create Event is Klaviyo's XL tier: 350/s burst, 3,500/min steady.
    events_rate: float = 3500 / 60
    events_burst: float = 350.0
    # Catalog variant bulk update jobs: 75/s burst, 750/min steady.
    catalog_rate: float = 750 / 60
    catalog_burst: float = 75.0


@dataclass(frozen=True, slots=True)
class BrazeSettings:
    """Take Braze webhooks; deliver decisions and stock to Braze."""

    webhook_token: SecretStr = field(default_factory=lambda: SecretStr(""))
    consent_default: bool = True
    # The REST endpoint of the workspace's instance, e.g. https://rest.fra-01.braze.eu.
    api_base: str = "https://rest.iad-01.braze.com"
    # A REST API key with campaigns.trigger.send, users.track and catalogs.update_items.
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Our campaign_id -> the Braze API-triggered campaign id; an approval of an unmapped
    # campaign cannot be sent and goes to the delivery DLQ.
    campaigns: Mapping[str, str] = field(default_factory=dict)
    catalog: str = "products"
    stock_interval: int = _duration(60_000)
    # /campaigns/trigger/send: 250,000 requests/hour, shared with /messages/send.
    send_rate: float = 250_000 / 3600
    send_burst: float = 250.0
    # /users/track: 3,000 requests per 3 s.
    track_rate: float = 1000.0
    track_burst: float = 3000.0
    # Asynchronous catalog item edits: 16,000 requests/min shared by the item endpoints.
    catalog_rate: float = 16_000 / 60
    catalog_burst: float = 100.0


@dataclass(frozen=True, slots=True)
class ShoppingfeedSettings:
    """Push stock to Shoppingfeed and read its marketplace orders."""

    api_base: str = "https://api.shopping-feed.com"
    token: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Inventory is set per catalog (`PUT /v1/catalog/{catalog_id}/inventory`), orders are
    # read per store (`GET /v1/store/{store_id}/order`).
    catalog_id: str = ""
    store_id: str = ""
    stock_interval: int = _duration(60_000)
    # Undocumented; 10 requests per 2 s is what the API reports in X-RateLimit-Limit. A 429
    # says how long to wait in X-RateLimit-Wait, which is honoured whatever this says.
    inventory_rate: float = 5.0
    inventory_burst: float = 10.0
    # `stockguard poll shoppingfeed`: how often new orders are asked for, and how many a page.
    poll_interval: int = _duration(60_000)
    page_size: int = 100
    # Each poll asks for orders created since the newest one seen minus this, so an order
    # cancelled or refused within it is seen again; older cancellations are not.
    poll_lookback: int = _duration(_H)
    # The order API shares the store's limit with the inventory pushes of the deliverer.
    orders_rate: float = 2.0
    orders_burst: float = 5.0


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Hold what `stockguard report` counts money with (0: not configured, and said so)."""

    # What one send costs (platform fee, deliverability): the stock-blind sends avoided.
    cost_per_send: float = 0.0
    shipping_per_order: float = 0.0
    shipping_per_unit: float = 0.0
    operating_per_order: float = 0.0
    operating_per_unit: float = 0.0
    currency: str = "EUR"
    # IANA time zone of the hours shown.
    timezone: str = "UTC"
    top_n: int = 20


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Run the deliverers (`stockguard deliver`): HTTP, batching, retries, the circuit."""

    # Each deliverer's consumer group is `{group_prefix}-{system}`.
    group_prefix: str = "stockguard-deliver"
    timeout: int = _duration(10_000)
    connect_timeout: int = _duration(3_000)
    # Requests in flight per deliverer.
    concurrency: int = 64
    # Messages taken from Kafka at a time (a batch is delivered before the next is taken).
    batch: int = 500
    backoff_base: int = _duration(500)
    backoff_cap: int = _duration(60_000)
    # After this many failures in a row the vendor is left alone for `circuit_cooldown`.
    circuit_threshold: int = 5
    circuit_cooldown: int = _duration(30_000)
    # How long the Braze deliverer remembers a trigger it sent (Kafka keeps a redelivery
    # that long at most): `{redis.prefix}:delivered:{system}:{trigger_id}` in Redis.
    record_ttl: int = _duration(7 * 24 * _H)
    # A retraction waits for its approval to be delivered at most this long.
    retraction_hold: int = _duration(10 * 60_000)
    # /metrics, /healthz, /readyz of a deliverer (or `--port`).
    host: str = "127.0.0.1"
    port: int = 9102

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.batch < 1:
            raise SettingsError("delivery.concurrency and delivery.batch must be >= 1")


@dataclass(frozen=True, slots=True)
class Ga4Settings:
    """Take GA4 Measurement Protocol events and BigQuery exports."""

    api_secret: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Which item field holds our sku: "item_id" or "item_variant".
    sku_field: str = "item_id"

    def __post_init__(self) -> None:
        if self.sku_field not in ("item_id", "item_variant"):
            raise SettingsError("ga4.sku_field must be item_id or item_variant")


@dataclass(frozen=True, slots=True)
class Settings:
    """Configure one stockguard process."""

    topics: TopicSettings = field(default_factory=TopicSettings)
    rules: RuleSettings = field(default_factory=RuleSettings)
    surge: SurgeSettings = field(default_factory=SurgeSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    input: InputSettings = field(default_factory=InputSettings)
    dlq: DlqSettings = field(default_factory=DlqSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    shopify: ShopifySettings = field(default_factory=ShopifySettings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    klaviyo: KlaviyoSettings = field(default_factory=KlaviyoSettings)
    braze: BrazeSettings = field(default_factory=BrazeSettings)
    ga4: Ga4Settings = field(default_factory=Ga4Settings)
    shoppingfeed: ShoppingfeedSettings = field(default_factory=ShoppingfeedSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    # Logical decision partitions: fixed, so decisions never depend on workers. 0 (auto):
    # one per worker of the run, so one process broadcasts product state to one replica.
    decision_partitions: int = 0
    # The live job's stock view of every changed sku on `topics.stock_views`, the feed of
    # the deliverers' catalog syncs (`stockguard deliver`). Off when no deliverer reads it:
    # building and producing a view per changed sku costs on every batch.
    publish_stock_views: bool = True
    recovery_dir: str = ""
    snapshot_interval: int = _duration(10_000)
    epoch_interval: int = _duration(10_000)
    # /metrics (plus the process id with -i), on loopback unless told otherwise: the
    # container image sets 0.0.0.0 so Prometheus can scrape it.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 3030
    # /healthz and /readyz (plus the process id with -i); the image sets 0.0.0.0.
    health_host: str = "127.0.0.1"
    health_port: int = 8081
    # Bytewax's own API server (/dataflow, bytewax_* metrics): 0 is off. When on, it binds
    # 0.0.0.0 whatever the host settings say (Bytewax has no setting for it).
    bytewax_api_port: int = 0
    # SIGTERM/SIGINT: longest time to finish the batch, flush, snapshot and exit.
    shutdown_timeout: int = _duration(30_000)
    log_format: str = "json"
    log_level: str = "INFO"
    # Key of the hash that stands for customer ids outside the decision topics.
    customer_hash_key: SecretStr = field(default_factory=lambda: SecretStr(""))

    def __post_init__(self) -> None:
        if self.decision_partitions < 0:
            raise SettingsError("decision_partitions must be >= 0 (0: one per worker)")
        if self.rules.cap_count < 0 or self.rules.sends_per_unit < 0:
            raise SettingsError("cap_count and sends_per_unit must be >= 0")

    def with_workers(self, total_workers: int) -> Settings:
        """Return these settings with automatic partition counts set for a run.

        Each decision partition holds a full replica of product state and receives every
        stock, catalog and order event, so more partitions than workers only cost time and
        memory; an explicit value (for a recovery store that must outlive a rescale) wins.
        """
        n = max(1, total_workers)
        out = self
        if not out.kafka.source_groups:
            out = dataclasses.replace(out, kafka=dataclasses.replace(out.kafka, source_groups=n))
        if not out.decision_partitions:
            out = dataclasses.replace(out, decision_partitions=n)
        return out


def _coerce(name: str, tp: Any, value: Any, is_duration: bool) -> Any:
    if is_duration:
        return parse_duration(value)
    if tp is SecretStr or tp == "SecretStr":
        return value if isinstance(value, SecretStr) else SecretStr(str(value))
    if tp is bool or tp == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected true or false")
    if tp is int or tp == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected an integer") from None
    if tp is float or tp == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected a number") from None
    if tp is str or tp == "str":
        return str(value)
    return value


def _build(cls: type[Any], data: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in known:
            raise SettingsError(f"unknown setting {path}{key}")
        f = known[key]
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if not isinstance(value, Mapping):
                raise SettingsError(f"{path}{key}: expected a table")
            kwargs[key] = _build(tp, value, f"{path}{key}.")
        elif key == "properties" or _is_mapping(tp):
            kwargs[key] = types.MappingProxyType(_mapping(f"{path}{key}", value))
        else:
            kwargs[key] = _coerce(f"{path}{key}", tp, value, bool(f.metadata.get("duration")))
    return cls(**kwargs)


def _is_mapping(tp: Any) -> bool:
    return typing.get_origin(tp) in (Mapping, dict) or tp in (Mapping, dict)


def _mapping(name: str, value: Any) -> dict[str, str]:
    """Read a table: a TOML table, or from the environment `k=v,k=v` or a JSON object."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                raise SettingsError(f"{name}: expected a JSON object or k=v,k=v") from None
        else:
            pairs = [p for p in text.split(",") if p.strip()]
            if not all("=" in p for p in pairs):
                raise SettingsError(f"{name}: expected a JSON object or k=v,k=v")
            value = dict(p.split("=", 1) for p in pairs)
            value = {k.strip(): v.strip() for k, v in value.items()}
    if not isinstance(value, Mapping):
        raise SettingsError(f"{name}: expected a table")
    return {str(k): str(v) for k, v in value.items()}


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


_SECTIONS = frozenset(
    f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(typing.get_type_hints(Settings)[f.name])
)


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    sections = {f.name for f in dataclasses.fields(Settings) if f.name in _SECTIONS}
    top_level = {f.name for f in dataclasses.fields(Settings)} - sections
    props: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith("STOCKGUARD_KAFKA_PROPERTY_"):
            props[name[len("STOCKGUARD_KAFKA_PROPERTY_") :].lower().replace("_", ".")] = value
            continue
        if not name.startswith("STOCKGUARD_"):
            continue
        rest = name[len("STOCKGUARD_") :].lower()
        if "__" in rest:
            section, key = rest.split("__", 1)
            if section not in sections:
                raise SettingsError(f"unknown settings section in {name}")
            data.setdefault(section, {})[key] = value
        elif rest in top_level:
            data[rest] = value
        # Other STOCKGUARD_* names (STOCKGUARD_CONFIG, the scripts' STOCKGUARD_CACHE, ...)
        # are not settings; a mistyped section field still fails loudly above.
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        data.setdefault("kafka", {}).setdefault("bootstrap_servers", env["KAFKA_BOOTSTRAP_SERVERS"])
    if env.get("REDIS_URL"):
        data.setdefault("redis", {}).setdefault("url", env["REDIS_URL"])
    if props:
        data.setdefault("kafka", {})["properties"] = props
    return data


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from defaults, the TOML file at `path`, env, then overrides."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = path or env.get("STOCKGUARD_CONFIG") or None
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None
    data = _merge(data, _from_env(env))
    if overrides:
        data = _merge(data, overrides)
    settings: Settings = _build(Settings, data, "")
    return settings


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """List (setting, value, env var) for every setting, secrets masked."""
    rows: list[tuple[str, str, str]] = []

    def walk(obj: Any, prefix: str, env_prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.", f"STOCKGUARD_{f.name.upper()}__")
                continue
            if f.name == "properties":
                shown = ", ".join(
                    f"{k}={'**********' if is_secret_property(k) else v}" for k, v in sorted(value.items())
                )
                rows.append((f"{prefix}{f.name}", shown, "STOCKGUARD_KAFKA_PROPERTY_<NAME>"))
                continue
            text = format_duration(value) if f.metadata.get("duration") else str(value)
            rows.append((f"{prefix}{f.name}", text, f"{env_prefix}{f.name.upper()}"))

    walk(settings, "", "STOCKGUARD_")
    return rows
