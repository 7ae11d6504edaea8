"""Render the day's report: one self-contained HTML page of charts, each with its table.

`stockguard report DIR [--input FILE] [--html OUT]` reads a replay or demo output
directory (one JSON-lines file per topic) and, with `--input`, the replay file it came
from. The figures are computed in `state.report`; this module reads the files and draws.
plotly draws the charts: its JavaScript is embedded once in the page, so the file opens
without a network.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from stockguard.config.settings import Settings
from stockguard.state.report import HOUR, Costs, DayFigures, figures

__all__ = ["read_inputs", "read_outputs", "render", "write_report"]


def read_outputs(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Read an output directory: topic -> messages."""
    got: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(out_dir.glob("*.jsonl")):
        msgs = got[f.stem] = []
        for n, line in enumerate(f.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                msg = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{f}: line {n} is not JSON ({exc}); a run cut short?") from exc
            if not isinstance(msg, dict):
                raise ValueError(f"{f}: line {n} is not a message object")
            msgs.append(msg)
    return got


def read_inputs(path: Path) -> list[tuple[str, Any]]:
    """Read a replay file's (topic, value) records; lines that do not parse are skipped."""
    recs = []
    for line in path.read_bytes().splitlines():
        try:
            r = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(r, dict) and isinstance(r.get("topic"), str):
            recs.append((r["topic"], r.get("value")))
    return recs


def _topics(settings: Settings) -> dict[str, str]:
    t = settings.topics
    return {
        "approved": t.approved,
        "suppressed": t.suppressed,
        "retracted": t.retracted,
        "surge_alerts": t.surge_alerts,
        "insights": t.insights,
        "products": t.products,
        "campaigns": t.campaigns,
        "orders": t.orders,
    }


class _Fmt:
    """Format numbers, money and hours for people."""

    def __init__(self, currency: str, tz: str) -> None:
        self.currency = currency
        self.tz = ZoneInfo(tz)

    def n(self, x: float) -> str:
        return f"{x:,.0f}"

    def money(self, x: float) -> str:
        return f"{x:,.2f} {self.currency}"

    def hour(self, h: int) -> str:
        return datetime.fromtimestamp(h * HOUR / 1000, UTC).astimezone(self.tz).strftime("%a %H:00")

    def time(self, ts: int) -> str:
        return datetime.fromtimestamp(ts / 1000, UTC).astimezone(self.tz).strftime("%a %H:%M")


def _minutes(x: float | None) -> str:
    return "" if x is None else f"{x:,.0f}"


def _table(headers: list[str], rows: Iterable[list[str]], name: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table data-table="{name}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _chart(fig: go.Figure, name: str) -> str:
    fig.update_layout(height=360, margin={"l": 50, "r": 20, "t": 40, "b": 40}, template="plotly_white")
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}")
    return f'<div class="chart" data-chart="{name}">{div}</div>'


def render(f: DayFigures, settings: Settings, title: str) -> str:
    """Render the figures as one HTML page."""
    r = settings.report
    fmt = _Fmt(r.currency, r.timezone)
    parts: list[str] = []
    hours = f.hours
    labels = [fmt.hour(h) for h in hours]

    # Decisions per hour by outcome.
    kinds = sorted({k for c in f.outcomes.values() for k in c}, key=lambda k: (not k.startswith("sent"), k))

    def count(h: int, k: str) -> int:
        c = f.outcomes.get(h)
        return c[k] if c is not None else 0

    def total(h: int) -> int:
        c = f.outcomes.get(h)
        return sum(c.values()) if c is not None else 0

    fig = go.Figure([go.Bar(name=k, x=labels, y=[count(h, k) for h in hours]) for k in kinds])
    fig.update_layout(barmode="stack", title="Decisions per hour")
    parts.append("<h2>Decisions per hour</h2>" + _chart(fig, "decisions"))
    parts.append(
        _table(
            ["hour", *kinds, "total"],
            (
                [lab, *(fmt.n(count(h, k)) for k in kinds), fmt.n(total(h))]
                for h, lab in zip(hours, labels, strict=True)
            ),
            "decisions",
        )
    )

    # What a stock-blind sender would have done.
    sb = f.stock_blind
    cost_note = "" if r.cost_per_send else " (report.cost_per_send not configured: cost shown as 0)"
    fig = go.Figure(
        [
            go.Bar(
                x=["suppressed out of stock", "re-targeted", "retracted"],
                y=[sb.suppressed, sb.retargeted, sb.retracted],
            )
        ]
    )
    fig.update_layout(title="Out-of-stock sends a stock-blind sender would have made")
    parts.append("<h2>Against a stock-blind sender</h2>" + _chart(fig, "stock-blind"))
    parts.append(
        _table(
            ["out-of-stock sends avoided", "customers spared", "cost avoided"],
            [[fmt.n(sb.sends_avoided), fmt.n(sb.customers_spared), fmt.money(sb.cost_avoided) + cost_note]],
            "stock-blind",
        )
    )

    # Skus marketing kept pushing while unavailable.
    fig = go.Figure([go.Bar(x=[p["sku"] for p in f.pushed], y=[p["pushes"] for p in f.pushed])])
    fig.update_layout(title=f"Top {len(f.pushed)} skus pushed while unavailable")
    parts.append("<h2>Skus marketing kept pushing while unavailable</h2>" + _chart(fig, "pushed"))
    parts.append(
        _table(
            ["sku", "triggers suppressed", "re-targeted away", "retracted", "hours pushed while unavailable"],
            (
                [
                    p["sku"],
                    fmt.n(p["suppressed"]),
                    fmt.n(p["retargeted_away"]),
                    fmt.n(p["retracted"]),
                    fmt.n(p["hours"]),
                ]
                for p in f.pushed
            ),
            "pushed",
        )
    )
    kept_note = "" if f.has_input else " (needs --input: the catalog's prices and costs)"
    fig = go.Figure([go.Bar(x=[f"{x['from']} → {x['to']}" for x in f.retargets], y=[x["count"] for x in f.retargets])])
    fig.update_layout(title="Re-targets, from → to")
    parts.append("<h3>Re-targets</h3>" + _chart(fig, "retargets"))
    parts.append(
        _table(
            ["from", "to", "re-targets", "margin kept" + kept_note],
            (
                [x["from"], x["to"], fmt.n(x["count"]), "" if x["margin_kept"] is None else fmt.money(x["margin_kept"])]
                for x in f.retargets
            ),
            "retargets",
        )
    )

    # Campaign P&L.
    if f.campaigns:
        c = f.costs
        notes = []
        if not (c.shipping_per_order or c.shipping_per_unit):
            notes.append("shipping cost not configured (report.shipping_per_order, report.shipping_per_unit)")
        if not (c.operating_per_order or c.operating_per_unit):
            notes.append("operating cost not configured (report.operating_per_order, report.operating_per_unit)")
        fig = go.Figure(
            [
                go.Scatter(name=p.campaign_id, x=[fmt.hour(h) for h in p.hourly_net()], y=list(p.hourly_net().values()))
                for p in f.campaigns
            ]
        )
        fig.update_layout(title="Net margin per hour, by campaign")
        parts.append("<h2>Campaigns: what they really earned</h2>" + _chart(fig, "campaigns"))
        if notes:
            parts.append("<p class='note'>" + html.escape("; ".join(notes)) + ": counted as 0.</p>")
        parts.append(
            _table(
                [
                    "campaign",
                    "orders",
                    "units",
                    "revenue",
                    "gross margin",
                    "media",
                    "shipping",
                    "operating",
                    "net margin",
                ],
                (
                    [
                        p.campaign_id + (f" ({p.name})" if p.name else ""),
                        fmt.n(p.orders),
                        fmt.n(p.units),
                        fmt.money(p.revenue),
                        fmt.money(p.gross_margin),
                        fmt.money(p.media_cost),
                        fmt.money(p.shipping_cost),
                        fmt.money(p.operating_cost),
                        fmt.money(p.net_margin),
                    ]
                    for p in f.campaigns
                ),
                "campaigns",
            )
        )
    else:
        parts.append("<h2>Campaigns</h2><p class='note'>Campaign money needs the input: --input FILE.</p>")

    # Surges and drains per location.
    fig = go.Figure()
    for loc in sorted({a["location"] for a in f.surges}):
        msgs = [a for a in f.surges if a["location"] == loc]
        fig.add_trace(
            go.Scatter(
                name=loc,
                mode="lines+markers",
                x=[fmt.time(a["ts"]) for a in msgs],
                y=[a["units_per_min"] for a in msgs],
                text=[a["status"] for a in msgs],
            )
        )
    fig.update_layout(title="Order surges: units per minute at each alert")
    parts.append("<h2>The warehouse: surges and stock drains</h2>" + _chart(fig, "surges"))
    parts.append(
        _table(
            ["time", "location", "status", "units/min", "baseline units/min", "extra staff"],
            (
                [
                    fmt.time(a["ts"]),
                    a["location"],
                    a["status"],
                    f"{a['units_per_min']:,.1f}",
                    f"{a['baseline_units_per_min']:,.1f}",
                    fmt.n(a.get("recommended_extra_staff") or 0),
                ]
                for a in f.surges
            ),
            "surges",
        )
    )
    parts.append(
        _table(
            ["time", "location", "status", "sku", "ATP", "minutes to stock-out", "also draining"],
            (
                [
                    fmt.time(a["ts"]),
                    a["location"],
                    a["status"],
                    a["sku"],
                    fmt.n(a["top_skus"][0]["atp"]),
                    ""
                    if a["top_skus"][0]["minutes_to_stockout"] is None
                    else f"{a['top_skus'][0]['minutes_to_stockout']:,.0f}",
                    ", ".join(t["sku"] for t in a["top_skus"][1:]),
                ]
                for a in f.drains
            ),
            "drains",
        )
    )

    # Merchandising.
    fig = go.Figure(
        [
            go.Bar(name="invisible in stock", x=[i["sku"] for i in f.invisible], y=[i["atp"] for i in f.invisible]),
            go.Bar(name="overstock", x=[i["sku"] for i in f.overstock], y=[i["atp"] for i in f.overstock]),
        ]
    )
    fig.update_layout(title="Merchandising: ATP of the skus to act on")
    parts.append("<h2>Merchandising</h2>" + _chart(fig, "merchandising"))
    parts.append(
        _table(
            ["sku", "insight", "ATP", "days of cover", "detail"],
            (
                [
                    i["sku"],
                    i["kind"].replace("_", " "),
                    fmt.n(i["atp"]),
                    "" if i.get("days_of_cover") is None else f"{i['days_of_cover']:,.0f}",
                    i.get("detail", ""),
                ]
                for i in (*f.invisible, *f.overstock)
            ),
            "merchandising",
        )
    )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px}"
        "table{border-collapse:collapse;margin:0.5rem 0 2rem;font-size:0.9rem}"
        "td,th{border:1px solid #ddd;padding:0.25rem 0.6rem;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.note{color:#a15c00}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{style}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Hours in {html.escape(r.timezone)}.</p>" + "".join(parts) + "</body></html>"
    )


def write_report(settings: Settings, out_dir: Path, html_path: Path, input_path: Path | None = None) -> DayFigures:
    """Compute the figures of an output directory and write the HTML page."""
    r = settings.report
    costs = Costs(
        r.cost_per_send, r.shipping_per_order, r.shipping_per_unit, r.operating_per_order, r.operating_per_unit
    )
    inputs = read_inputs(input_path) if input_path is not None else None
    f = figures(read_outputs(out_dir), inputs, _topics(settings), costs, r.top_n)
    html_path.write_text(render(f, settings, f"stockguard: the day of {out_dir.name}"), encoding="utf-8")
    return f
