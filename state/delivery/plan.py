"""What each vendor is sent for a batch of decisions or a stock push: `Call`s, as data.

A deliverer reads approved and retracted triggers (and stock views), and a `Planner`
turns them into the vendor's HTTP calls, each carrying the positions of the messages it
settles, so the Kafka offsets behind a call are committed only once the vendor took it.
The request bodies themselves come from `klaviyo`, `braze` and `shoppingfeed`.

- Klaviyo: one Create Event per approval or retraction (the Events API takes one event a
  request; `unique_id` makes a repeat harmless); stock as bulk variant jobs.
- Braze: approvals grouped per Braze campaign, 50 recipients a call; retractions as exit
  events, 75 a call; stock as catalog item patches, 50 a call. An approval of a campaign
  with no Braze id is unsendable (delivery DLQ). Braze has no idempotency key, so its
  approvals are `recorded`: the deliverer keeps the ids it sent.
- Shoppingfeed: stock only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

from stockguard.state.delivery import braze, klaviyo, shoppingfeed
from stockguard.state.delivery.stock import Position, StockPush

__all__ = ["SYSTEMS", "BrazePlanner", "Call", "KlaviyoPlanner", "Msg", "Planner", "ShoppingfeedPlanner"]

SYSTEMS: Final = ("klaviyo", "braze", "shoppingfeed")


class Msg(NamedTuple):
    """A decoded decision message and where it was read."""

    kind: str  # "approved" | "retracted"
    value: Mapping[str, Any]
    position: Position


@dataclass(frozen=True, slots=True)
class Call:
    """One vendor request and what it settles."""

    endpoint: str  # the rate-limit bucket and metric label: events, send, track, catalog, inventory
    method: str
    path: str
    body: Any
    kind: str  # approved | retracted | stock
    trigger_ids: tuple[str, ...] = ()
    positions: tuple[Position, ...] = ()


class Planner(Protocol):
    """A vendor's calls for decisions and stock."""

    @property
    def system(self) -> str:
        """Name the vendor (metric label, record key, consumer group)."""
        ...

    @property
    def recorded(self) -> bool:
        """Tell whether approvals need our own delivered-ids record (no vendor-side dedup)."""
        ...

    @property
    def decisions(self) -> bool:
        """Tell whether this vendor takes decisions at all (Shoppingfeed takes stock only)."""
        ...

    def approvals(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Return the calls for approved triggers, and those that cannot be sent, with why."""
        ...

    def retractions(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Return the calls for retracted triggers, and those that cannot be sent, with why."""
        ...

    def stock(self, push: StockPush) -> list[Call]:
        """Return the calls that set the catalog's stock."""
        ...


def _ids(msgs: Sequence[Msg]) -> tuple[str, ...]:
    return tuple(str(m.value.get("trigger_id")) for m in msgs)


def _positions(msgs: Sequence[Msg]) -> tuple[Position, ...]:
    return tuple(m.position for m in msgs)


def _missing(m: Msg) -> str | None:
    v = m.value
    for name in ("trigger_id", "customer_id", "ts"):
        if v.get(name) in (None, ""):
            return f"no {name}"
    if not isinstance(v.get("ts"), int):
        return "ts is not epoch ms"
    return None


def _split(msgs: Sequence[Msg]) -> tuple[list[Msg], list[tuple[Msg, str]]]:
    ok, bad = [], []
    for m in msgs:
        why = _missing(m)
        if why is None:
            ok.append(m)
        else:
            bad.append((m, why))
    return ok, bad


@dataclass(frozen=True)
class KlaviyoPlanner:
    """Klaviyo: Events API per decision, catalog variant jobs for stock."""

    approved_metric: str = klaviyo.APPROVED_METRIC
    retracted_metric: str = klaviyo.RETRACTED_METRIC
    system: str = "klaviyo"
    recorded: bool = False
    decisions: bool = True

    def _event(self, m: Msg) -> Call:
        body = klaviyo.event_body(m.kind, m.value, self.approved_metric, self.retracted_metric)
        return Call("events", "POST", "/api/events", body, m.kind, _ids([m]), (m.position,))

    def approvals(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Return one Create Event call per approval."""
        ok, bad = _split(msgs)
        return [self._event(m) for m in ok], bad

    def retractions(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Return one Create Event call per retraction."""
        ok, bad = _split(msgs)
        return [self._event(m) for m in ok], bad

    def stock(self, push: StockPush) -> list[Call]:
        """Return the bulk variant update jobs, 100 variants each."""
        return [
            Call("catalog", "POST", "/api/catalog-variant-bulk-update-jobs", job, "stock")
            for job in klaviyo.variant_jobs(sorted(push.atp.items()))
        ]


@dataclass(frozen=True)
class BrazePlanner:
    """Braze: triggered campaign sends, exit events, catalog item patches."""

    campaigns: Mapping[str, str]
    catalog: str = "products"
    system: str = "braze"
    recorded: bool = True
    decisions: bool = True

    def approvals(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Group approvals per Braze campaign, 50 recipients a call."""
        groups: dict[str, list[Msg]] = {}
        bad: list[tuple[Msg, str]] = []
        for m in msgs:
            why = _missing(m)
            braze_id = self.campaigns.get(str(m.value.get("campaign_id")))
            if why is None and braze_id is None:
                why = f"campaign {m.value.get('campaign_id')!s} has no Braze campaign id (braze.campaigns)"
            if why is not None:
                bad.append((m, why))
                continue
            groups.setdefault(braze_id, []).append(m)  # type: ignore[arg-type]
        calls = []
        for group in groups.values():
            for i in range(0, len(group), braze.RECIPIENT_LIMIT):
                chunk = group[i : i + braze.RECIPIENT_LIMIT]
                bodies, _ = braze.trigger_sends([m.value for m in chunk], self.campaigns)
                path = "/campaigns/trigger/send"
                calls.append(Call("send", "POST", path, bodies[0], "approved", _ids(chunk), _positions(chunk)))
        return calls, bad

    def retractions(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Return exit events, 75 a call."""
        ok, bad = _split(msgs)
        calls = []
        for i in range(0, len(ok), braze.TRACK_LIMIT):
            chunk = ok[i : i + braze.TRACK_LIMIT]
            body = braze.retraction_tracks([m.value for m in chunk])[0]
            calls.append(Call("track", "POST", "/users/track", body, "retracted", _ids(chunk), _positions(chunk)))
        return calls, bad

    def stock(self, push: StockPush) -> list[Call]:
        """Return catalog item patches, 50 items each."""
        path = f"/catalogs/{self.catalog}/items"
        bodies = braze.catalog_patches(dict(sorted(push.atp.items())))
        return [Call("catalog", "PATCH", path, body, "stock") for body in bodies]


@dataclass(frozen=True)
class ShoppingfeedPlanner:
    """Shoppingfeed: the store's inventory, 100 references a request."""

    catalog_id: str
    system: str = "shoppingfeed"
    recorded: bool = False
    decisions: bool = False

    def approvals(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Send nothing: marketplaces take stock, not decisions."""
        return [], []

    def retractions(self, msgs: Sequence[Msg]) -> tuple[list[Call], list[tuple[Msg, str]]]:
        """Send nothing."""
        return [], []

    def stock(self, push: StockPush) -> list[Call]:
        """Return the inventory updates."""
        path = f"/v1/catalog/{self.catalog_id}/inventory"
        bodies = shoppingfeed.inventory_puts(dict(sorted(push.atp.items())))
        return [Call("inventory", "PUT", path, body, "stock") for body in bodies]
