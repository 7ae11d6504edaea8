#!/usr/bin/env python3
"""Render the Grafana dashboard from Prometheus queries over a live stockguard run.

There is no Grafana (and no Docker) where this project is built, so this script draws
`ops/grafana/dashboards/stockguard.json` itself, from real data:

1. create the contract's topics under names unique to this run (`stockguard topics create`);
2. start `stockguard run -w 2` on them (Kafka, plus the Redis read model under a prefix
   unique to this run), the three deliverers (`stockguard deliver klaviyo|braze|shoppingfeed`)
   against the local fake vendors (`stockguard.fake_vendors`, in a process of their own) and
   `/usr/bin/prometheus`, scraping every `/metrics` each second as jobs `stockguard` and
   `stockguard-deliver`, with the rules of `ops/prometheus/alerts.yml`;
3. produce a compressed simulated day to the input topics, paced by event time: the
   demo simulator (`stockguard.sim`), shortened so that its Cyber Monday campaign,
   and the order surge it causes at WH-PARIS, fall inside a run of a few minutes
   (`stockguard loadgen` always starts the simulated day at midnight, 10 h before it);
4. wait until every message produced has been read (by the deliverers too, for a minute
   at most), then ask Prometheus (`/api/v1/query_range`, step 2 s) for every target of
   every panel over the run;
5. stop everything it started (even on errors or Ctrl-C), delete the run's topics,
   consumer groups and Redis keys, and draw the panels with matplotlib on the dashboard's
   grid (a row as its title over a rule, as Grafana draws it).

The image is captioned as what it is: a rendering, not a Grafana screenshot.

Usage:
    .venv/bin/python scripts/render_dashboard.py [--out docs/dashboard.png]

Needs matplotlib (`pip install matplotlib`; not a dependency of stockguard), the
`prometheus` binary, a Kafka broker and Redis (`bash scripts/services.sh start`).
Inherited `STOCKGUARD_*` and `BYTEWAX_*` variables are dropped so that the run is
reproducible. Progress goes to stderr; the run takes about five minutes with the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson

from stockguard.config.settings import TopicSettings
from stockguard.loadgen import produce_paced
from stockguard.sim import SimConfig, simulate

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "stockguard.json"
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
CAPTION = "Rendered by scripts/render_dashboard.py from Prometheus queries over a live run, not a Grafana screenshot"

# Grafana's dark theme and its classic palette, in the order Grafana assigns series.
BG = "#111217"
PANEL_BG = "#181b1f"
PANEL_BORDER = "#2c2f35"
TEXT = "#ccccdc"
TEXT_DIM = "#8e8e9e"
GRID = "#2a2d33"
CAPTION_COLOR = "#ff9830"
PALETTE = tuple(
    "#7eb26d #eab839 #6ed0e0 #ef843c #e24d42 #1f78c1 #ba43a9 #705da0 #508642 #cca300 #447ebc #c15c17 "
    "#890f02 #0a437c #6d1f62 #584477 #b7dbab #f4d598 #70dbed #f9ba8f #f29191 #82b5d8 #e5a8e2 #aea2e0 "
    "#629e51 #e5ac0e #64b0c8 #e0752d #bf1b00 #0a50a1 #962d82 #614d93".split()
)
STAT_COLOR = "#73bf69"
SYSTEMS = ("klaviyo", "braze", "shoppingfeed")


def log(msg: str) -> None:
    """Write one progress line to stderr."""
    sys.stderr.write(f"render_dashboard: {msg}\n")
    sys.stderr.flush()


class RunError(RuntimeError):
    """Raised when a service does not start or the run cannot complete."""


# --------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class Target:
    """One query of a panel."""

    ref_id: str
    expr: str
    legend_format: str


@dataclass(frozen=True)
class Panel:
    """The parts of a Grafana panel that the rendering uses."""

    title: str
    kind: str
    unit: str
    x: int
    y: int
    w: int
    h: int
    targets: tuple[Target, ...]


@dataclass
class Series:
    """One result series of a target: its legend and values on the query's time grid."""

    legend: str
    values: list[float]


def load_panels(path: Path) -> tuple[str, list[Panel]]:
    """Read the dashboard's title and panels from its JSON model."""
    model = json.loads(path.read_text())
    panels = []
    for p in model["panels"]:
        grid = p["gridPos"]
        targets = tuple(Target(t.get("refId", ""), t["expr"], t.get("legendFormat", "")) for t in p.get("targets", []))
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        panels.append(Panel(p["title"], p["type"], unit, grid["x"], grid["y"], grid["w"], grid["h"], targets))
    return str(model.get("title", "")), panels


_LEGEND_VAR = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def legend_text(fmt: str, labels: dict[str, str], expr: str) -> str:
    """Substitute `{{label}}` in a legend format like Grafana (the series labels if empty)."""
    if fmt:
        return _LEGEND_VAR.sub(lambda m: labels.get(m.group(1), ""), fmt)
    if not labels:
        return expr
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET a local URL; return the status (0 if nothing answers) and the body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http URLs we build
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def stockguard_command() -> list[str]:
    """Return the command that runs the `stockguard` CLI of this interpreter's environment."""
    script = Path(sys.executable).parent / "stockguard"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stockguard.cli"]


# The fake vendors in a process of their own (not a thread of this one, which produces the load).
FAKE_VENDORS = """
import sys
from aiohttp import web
from stockguard.fake_vendors import FakeVendors, fake_app
web.run_app(fake_app(FakeVendors()), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@dataclass
class RunConfig:
    """What to run: the services to use, the load and the output."""

    bootstrap: str
    redis_url: str
    prometheus: str
    workers: int
    sim: SimConfig
    speed: float
    linger_ms: float
    lead_in: float
    hold: float
    drain_timeout: float
    step: float
    keep: bool


@dataclass
class LiveRun:
    """The processes, topics and keys one run started or created, for a clean stop."""

    cfg: RunConfig
    workdir: Path
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    prom_port: int = field(default_factory=free_port)
    deliver_ports: dict[str, int] = field(default_factory=lambda: {s: free_port() for s in SYSTEMS})
    fake_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    topics_created: bool = False

    @property
    def prom_url(self) -> str:
        """Return the base URL of the run's Prometheus."""
        return f"http://127.0.0.1:{self.prom_port}"

    @property
    def redis_prefix(self) -> str:
        """Return the Redis key prefix of the run's read model."""
        return f"stockguard-dash-{self.run_id}"

    def topics(self) -> TopicSettings:
        """Return the contract's topics renamed for this run (`<name>-<run id>`)."""
        base = TopicSettings()
        return TopicSettings(**{f.name: f"{getattr(base, f.name)}-{self.run_id}" for f in dataclasses.fields(base)})

    def env(self) -> dict[str, str]:
        """Return the environment of the run's stockguard commands."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKGUARD_", "BYTEWAX_"))}
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.cfg.bootstrap,
                "REDIS_URL": self.cfg.redis_url,
                "STOCKGUARD_REDIS__ENABLED": "true",
                "STOCKGUARD_REDIS__PREFIX": self.redis_prefix,
                "STOCKGUARD_REDIS__TTL": "1h",
                "STOCKGUARD_METRICS_PORT": str(self.metrics_port),
                "STOCKGUARD_HEALTH_PORT": str(self.health_port),
                "STOCKGUARD_HEALTH_HOST": "127.0.0.1",
                # Bytewax's API server writes dataflow.json here (default: the working directory).
                "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(self.workdir),
            }
        )
        topics = self.topics()
        for f in dataclasses.fields(topics):
            env[f"STOCKGUARD_TOPICS__{f.name.upper()}"] = getattr(topics, f.name)
        return env

    def deliver_env(self, base: str) -> dict[str, str]:
        """Return the environment of the run's deliverers: the fakes' URL and keys.

        The load runs `speed` times faster than the simulated day, so the vendors' rate
        limits are too: each default rate times `speed` (the bursts stay as they are).
        """
        from stockguard.config.settings import Settings
        from stockguard.fake_vendors import FakeVendors
        from stockguard.sim.config import CAMPAIGN_ABANDON, CAMPAIGN_CYBER, CAMPAIGN_LIFECYCLE

        keys = FakeVendors()
        campaigns = {c: f"braze-{c}" for c in (CAMPAIGN_CYBER, CAMPAIGN_ABANDON, CAMPAIGN_LIFECYCLE)}
        env = self.env() | {
            "STOCKGUARD_DELIVERY__GROUP_PREFIX": f"stockguard-dash-{self.run_id}",
            "STOCKGUARD_KLAVIYO__API_BASE": base,
            "STOCKGUARD_KLAVIYO__API_KEY": keys.klaviyo_key,
            "STOCKGUARD_KLAVIYO__REVISION": keys.klaviyo_revision,
            "STOCKGUARD_BRAZE__API_BASE": base,
            "STOCKGUARD_BRAZE__API_KEY": keys.braze_key,
            "STOCKGUARD_BRAZE__CAMPAIGNS": json.dumps(campaigns),
            "STOCKGUARD_SHOPPINGFEED__API_BASE": base,
            "STOCKGUARD_SHOPPINGFEED__TOKEN": keys.shoppingfeed_token,
            "STOCKGUARD_SHOPPINGFEED__CATALOG_ID": "1",
        }
        defaults = Settings()
        for section, rate in (
            ("klaviyo", "events_rate"),
            ("klaviyo", "catalog_rate"),
            ("braze", "send_rate"),
            ("braze", "track_rate"),
            ("braze", "catalog_rate"),
            ("shoppingfeed", "inventory_rate"),
        ):
            value = getattr(getattr(defaults, section), rate) * self.cfg.speed
            env[f"STOCKGUARD_{section.upper()}__{rate.upper()}"] = str(value)
        return env

    def create_topics(self) -> None:
        """Create the run's topics with `stockguard topics create`."""
        self.topics_created = True
        res = subprocess.run(  # noqa: S603 - our own CLI
            [*stockguard_command(), "topics", "create"],
            env=self.env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise RunError(f"stockguard topics create failed:\n{res.stdout}{res.stderr}")
        log(f"created {len(self.topic_names())} topics with suffix -{self.run_id}")

    def topic_names(self) -> list[str]:
        """Return every topic of the run: inputs, outputs and the deliverers'."""
        t = self.topics()
        return [*t.inputs(), *t.outputs(), *t.delivery()]

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process in its own session, in the work directory, its output in `<name>.log` there."""
        with open(self.workdir / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - fixed commands
                cmd, env=env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        """Return the last lines of a process's log."""
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise if a started process has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RunError(f"{name} exited with code {proc.returncode}:\n{self.log_tail(name)}")

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready` every 0.5 s until it holds; raise after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RunError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.5)

    def start_stockguard(self) -> None:
        """Start `stockguard run -w N` and wait until it is ready and serves metrics."""
        self.start("stockguard", [*stockguard_command(), "run", "-w", str(self.cfg.workers)], env=self.env())
        log(f"stockguard run -w {self.cfg.workers}: metrics on :{self.metrics_port}, health on :{self.health_port}")
        self.wait_until(
            "stockguard /readyz",
            lambda: http_get(f"http://127.0.0.1:{self.health_port}/readyz")[0] == 200,
            timeout=120,
        )
        self.wait_until(
            "stockguard /metrics",
            lambda: b"stockguard_events_read" in http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")[1],
            timeout=60,
        )

    def start_deliverers(self) -> None:
        """Start the fake vendors and `stockguard deliver` for each vendor; wait until each is ready."""
        base = f"http://127.0.0.1:{self.fake_port}"
        self.start("fake-vendors", [sys.executable, "-c", FAKE_VENDORS, str(self.fake_port)], env=self.env())
        self.wait_until("the fake vendors", lambda: http_get(f"{base}/_fake/state")[0] == 200, timeout=30)
        env = self.deliver_env(base)
        for system, port in self.deliver_ports.items():
            self.start(f"deliver-{system}", [*stockguard_command(), "deliver", system, "--port", str(port)], env=env)
        log(f"deliverers against the fake vendors on :{self.fake_port}: {self.deliver_ports}")
        for system, port in self.deliver_ports.items():
            self.wait_until(
                f"deliver {system} /readyz",
                lambda port=port: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200,  # type: ignore[misc]
                timeout=60,
            )

    def start_prometheus(self) -> None:
        """Start Prometheus scraping the run every second, and wait until it has scraped it."""
        deliverers = [f"127.0.0.1:{port}" for port in self.deliver_ports.values()]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "stockguard", "static_configs": [{"targets": [f"127.0.0.1:{self.metrics_port}"]}]},
                {"job_name": "stockguard-deliver", "static_configs": [{"targets": deliverers}]},
            ],
        }
        conf_path = self.workdir / "prometheus.yml"
        conf_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.start(
            "prometheus",
            [
                self.cfg.prometheus,
                f"--config.file={conf_path}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
        )
        log(f"prometheus on :{self.prom_port}, scraping :{self.metrics_port} every 1 s")
        self.wait_until("prometheus /-/ready", lambda: http_get(f"{self.prom_url}/-/ready")[0] == 200, timeout=60)
        self.wait_until(
            'up{job="stockguard"} == 1', lambda: self.instant('sum(up{job="stockguard"})') == 1.0, timeout=60
        )
        self.wait_until(
            'up{job="stockguard-deliver"} == 1',
            lambda: self.instant('sum(up{job="stockguard-deliver"})') == float(len(self.deliver_ports)),
            timeout=60,
        )

    def prom_api(self, path: str, params: dict[str, str]) -> Any:
        """Call the Prometheus HTTP API and return its `data`."""
        url = f"{self.prom_url}{path}?{urllib.parse.urlencode(params)}"
        status, body = http_get(url, timeout=30)
        if status != 200:
            raise RunError(f"Prometheus answered {status} to {path} {params}: {body[:300]!r}")
        return orjson.loads(body)["data"]

    def instant(self, expr: str) -> float | None:
        """Evaluate an instant query of one series; None if it has no result."""
        try:
            result = self.prom_api("/api/v1/query", {"query": expr})["result"]
        except RunError:
            return None
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        """Stop every started process (SIGINT/SIGTERM, then SIGKILL) and drop what the run created."""
        deliverers = tuple(f"deliver-{s}" for s in SYSTEMS)
        stops = {"stockguard": signal.SIGINT, "prometheus": signal.SIGTERM, "fake-vendors": signal.SIGTERM}
        stops |= {name: signal.SIGTERM for name in deliverers}
        for name in (*deliverers, "fake-vendors", "stockguard", "prometheus"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            log(f"stopping {name} (pid {proc.pid})")
            try:
                os.killpg(proc.pid, stops[name])
                proc.wait(20)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in 20 s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            except ProcessLookupError:
                pass
        if self.cfg.keep:
            log(f"kept topics (suffix -{self.run_id}), Redis keys {self.redis_prefix}:* and {self.workdir}")
            return
        self.delete_topics()
        self.delete_redis_keys()

    def delete_topics(self) -> None:
        """Delete the run's topics and the deliverers' consumer groups (best effort)."""
        if not self.topics_created:
            return
        from confluent_kafka.admin import AdminClient

        names = self.topic_names()
        try:
            admin = AdminClient({"bootstrap.servers": self.cfg.bootstrap})
            existing = set(admin.list_topics(timeout=10).topics)
            names = [n for n in names if n in existing]
            for fut in admin.delete_topics(names, operation_timeout=30).values():
                fut.result()
            log(f"deleted {len(names)} topics")
            if "fake-vendors" in self.procs:
                groups = [f"stockguard-dash-{self.run_id}-{s}" for s in SYSTEMS]
                for fut in admin.delete_consumer_groups(groups, request_timeout=30).values():
                    fut.result()
                log(f"deleted consumer groups {', '.join(groups)}")
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the run's outcome
            log(f"could not delete the run's topics or groups: {exc}")

    def delete_redis_keys(self) -> None:
        """Delete the run's Redis read-model keys (best effort)."""
        import redis

        try:
            client = redis.Redis.from_url(self.cfg.redis_url)
            keys = list(client.scan_iter(match=f"{self.redis_prefix}:*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
            client.close()
            log(f"deleted {len(keys)} Redis keys {self.redis_prefix}:*")
        except redis.RedisError as exc:
            log(f"could not delete the run's Redis keys: {exc}")


@contextmanager
def live_run(cfg: RunConfig) -> Iterator[LiveRun]:
    """Yield a run in a temporary directory; stop and clean up whatever happens."""
    workdir = Path(tempfile.mkdtemp(prefix="stockguard-dash-"))
    run = LiveRun(cfg, workdir)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield run
    finally:
        try:
            run.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            if not cfg.keep:
                shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- load


@dataclass
class LoadReport:
    """What the load generator produced, in wall time."""

    messages: int
    wall_start: float
    wall_end: float
    campaign_wall: tuple[float, float] | None


def produce_load(run: LiveRun) -> LoadReport:
    """Produce the simulated period to the run's input topics, paced by event time."""
    from confluent_kafka import Producer

    cfg = run.cfg
    sim = cfg.sim
    names = run.topics().from_contract()
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": cfg.bootstrap, "linger.ms": cfg.linger_ms, "enable.idempotence": True})
    wall0 = time.time()
    mono0 = time.monotonic()
    next_report = mono0 + 30.0

    def tick(sent: int) -> bool:
        nonlocal next_report
        if failures:
            raise RunError(f"Kafka did not take a message: {failures[0]}")
        if time.monotonic() >= next_report:
            next_report += 30.0
            run.check_alive()
            sim_h = (time.monotonic() - mono0) * cfg.speed / 3600
            log(f"load: simulated hour {sim_h:.1f} of {sim.hours:g}, {sent:,} messages")
        return True

    sent = produce_paced(producer, simulate(sim), names, sim.start_ts, cfg.speed, on_delivery, tick)
    left = producer.flush(30)
    if left or failures:
        raise RunError(f"{left} messages unacknowledged, failures: {failures[:1]}")
    wall_end = time.time()
    log(f"load: {sent:,} messages produced in {wall_end - wall0:.0f} s")
    camp0 = wall0 + sim.campaign_start_h * 3600 / cfg.speed
    camp1 = min(camp0 + sim.campaign_hours * 3600 / cfg.speed, wall_end)
    return LoadReport(sent, wall0, wall_end, (camp0, camp1) if camp0 < camp1 else None)


# --------------------------------------------------------------------------- queries


@dataclass
class Capture:
    """Everything the rendering needs: the time grid, every panel's series, facts of the run."""

    start: float
    end: float
    step: float
    series: list[list[Series]]
    facts: list[str]
    campaign_wall: tuple[float, float] | None
    alerts: list[str]

    @property
    def times(self) -> list[float]:
        """Return the query grid's timestamps (epoch seconds)."""
        n = int(round((self.end - self.start) / self.step)) + 1
        return [self.start + i * self.step for i in range(n)]


def save_capture(cap: Capture, path: Path) -> None:
    """Write a capture to JSON (NaN as null), to render it again without a run."""
    doc = dataclasses.asdict(cap)
    for panel in doc["series"]:
        for s in panel:
            s["values"] = [None if math.isnan(v) else v for v in s["values"]]
    path.write_bytes(orjson.dumps(doc))


def load_capture(path: Path) -> Capture:
    """Read a capture written by `save_capture`."""
    doc = orjson.loads(path.read_bytes())
    series = [
        [Series(s["legend"], [math.nan if v is None else float(v) for v in s["values"]]) for s in panel]
        for panel in doc["series"]
    ]
    wall = doc["campaign_wall"]
    return Capture(
        doc["start"], doc["end"], doc["step"], series, doc["facts"], tuple(wall) if wall else None, doc["alerts"]
    )


def query_panel(run: LiveRun, panel: Panel, start: float, end: float, step: float) -> list[Series]:
    """Evaluate every target of a panel over the range; return its series on the grid."""
    n = int(round((end - start) / step)) + 1
    out: list[Series] = []
    for target in panel.targets:
        data = run.prom_api(
            "/api/v1/query_range",
            {"query": target.expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        for res in data["result"]:
            values = [math.nan] * n
            for ts, v in res["values"]:
                i = int(round((float(ts) - start) / step))
                if 0 <= i < n:
                    values[i] = float(v)
            labels = {k: v for k, v in res["metric"].items() if k != "__name__"}
            out.append(Series(legend_text(target.legend_format, labels, target.expr), values))
    return out


def fired_alerts(run: LiveRun, start: float, end: float) -> list[str]:
    """List the alerts of the rule file that were pending or firing during the range."""
    data = run.prom_api(
        "/api/v1/query_range",
        {"query": "ALERTS", "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"},
    )
    seen = sorted(
        {f"{r['metric'].get('alertname', '?')} ({r['metric'].get('alertstate', '?')})" for r in data["result"]}
    )
    return seen


def capture(cfg: RunConfig, panels: list[Panel]) -> Capture:
    """Run stockguard and Prometheus under load and query every panel over the run."""
    with live_run(cfg) as run:
        run.create_topics()
        run.start_stockguard()
        run.start_deliverers()
        run.start_prometheus()
        t0 = time.time()
        log(f"scraped; idle lead-in of {cfg.lead_in:g} s")
        time.sleep(cfg.lead_in)
        load = produce_load(run)
        log("waiting until every message produced has been read")
        run.wait_until(
            "stockguard to read every message",
            lambda: (run.instant("sum(stockguard_events_read_total)") or 0) >= load.messages,
            timeout=cfg.drain_timeout,
        )
        try:
            run.wait_until(
                "the deliverers to read every decision and stock view",
                lambda: run.instant("sum(stockguard_delivery_consumer_lag)") == 0.0,
                timeout=60,
            )
        except RunError as exc:
            log(f"going on: {exc}")
        log(f"drained; holding {cfg.hold:g} s")
        time.sleep(cfg.hold)
        t1 = time.time()
        start = math.floor(t0 / cfg.step) * cfg.step
        end = math.ceil(t1 / cfg.step) * cfg.step
        log(f"querying {sum(len(p.targets) for p in panels)} targets over {end - start:.0f} s, step {cfg.step:g} s")
        series = [query_panel(run, p, start, end, cfg.step) for p in panels]
        alerts = fired_alerts(run, start, end)
        build = run.prom_api("/api/v1/status/buildinfo", {})
        sim = cfg.sim
        facts = [
            f"Prometheus {build.get('version', '?')} scraping `stockguard run -w {cfg.workers}` every 1 s; "
            f"every panel's PromQL from ops/grafana/dashboards/stockguard.json, query_range step {cfg.step:g} s.",
            f"Load: stockguard.sim, {sim.hours:g} simulated hours at {cfg.speed:g}x "
            f"({sim.events_per_hour:,} clickstream events/h baseline, seed {sim.seed}), campaign cm-cyber from "
            f"simulated hour {sim.campaign_start_h:g} for {sim.campaign_hours:g} h; {load.messages:,} messages "
            f"produced to Kafka; Redis read model on. Shaded band: the campaign's window, mapped to wall time "
            f"(an annotation added here, not in the dashboard).",
            f"Delivery row: `stockguard deliver klaviyo|braze|shoppingfeed` against the local fake vendors of "
            f"stockguard.fake_vendors (no vendor is reachable from here), which accept every well-formed request "
            f"at once; their default rate limits times {cfg.speed:g}, like the load.",
        ]
        return Capture(start, end, cfg.step, series, facts, load.campaign_wall, alerts)


# --------------------------------------------------------------------------- rendering


def _trim(x: float, decimals: int) -> str:
    text = f"{x:.{max(decimals, 0)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _auto_decimals(x: float) -> int:
    ax = abs(x)
    if ax == 0 or ax >= 100:
        return 0
    if ax >= 10:
        return 1
    if ax >= 1:
        return 2
    return min(6, 2 - math.floor(math.log10(ax)))


def _scale(unit: str, magnitude: float) -> tuple[float, str, str]:
    """Return (divisor, prefix, suffix) for values of `unit` around `magnitude`."""
    m = abs(magnitude)
    if unit == "s":
        if m == 0 or m >= 1:
            return 1.0, "", " s"
        if m >= 1e-3:
            return 1e-3, "", " ms"
        return 1e-6, "", " µs"
    steps = (
        ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K")) if unit != "currencyEUR" else ((1e9, "B"), (1e6, "M"), (1e3, "K"))
    )
    div, mult = 1.0, ""
    for size, name in steps:
        if m >= size:
            div, mult = size, name
            break
    if unit == "ops":
        return div, "", f"{mult} ops/s"
    if unit == "currencyEUR":
        return div, "€", mult
    return div, "", mult


def format_value(v: float, unit: str) -> str:
    """Format one value in a Grafana unit (`ops`, `s`, `short`, `currencyEUR`)."""
    if math.isnan(v):
        return "No data"
    div, prefix, suffix = _scale(unit, v)
    x = v / div
    return f"{prefix}{_trim(x, _auto_decimals(x))}{suffix}"


def format_ticks(ticks: Sequence[float], unit: str) -> list[str]:
    """Format axis ticks in one unit scale, with the decimals their spacing needs."""
    top = max((abs(t) for t in ticks), default=0.0)
    div, prefix, suffix = _scale(unit, top)
    spacing = min((abs(b - a) for a, b in zip(ticks, ticks[1:], strict=False) if b != a), default=1.0) / div
    decimals = max(0, -math.floor(math.log10(spacing) + 1e-9)) if spacing > 0 else 0
    zero_prefix, zero_suffix = _scale(unit, 0.0)[1:]
    return [f"{zero_prefix}0{zero_suffix}" if t == 0 else f"{prefix}{_trim(t / div, decimals)}{suffix}" for t in ticks]


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of the page: Grafana's 24-column grid under a header."""

    width: int = 1800
    margin: int = 12
    header: int = 96
    footer: int = 70
    row: int = 34
    gap: int = 8

    def height(self, rows: int) -> int:
        """Return the page height for a grid of `rows` rows."""
        return self.header + rows * self.row + self.footer

    def col(self) -> float:
        """Return the width of one grid column."""
        return (self.width - 2 * self.margin) / 24


class Page:
    """A matplotlib figure addressed in pixels from the top-left corner."""

    def __init__(self, fig: Figure, width: int, height: int) -> None:
        self.fig = fig
        self.w = width
        self.h = height

    def rect(self, left: float, top: float, width: float, height: float) -> tuple[float, float, float, float]:
        """Convert a pixel box (top-left origin) to figure coordinates."""
        return (left / self.w, 1 - (top + height) / self.h, width / self.w, height / self.h)

    def text(self, left: float, top: float, s: str, **kw: Any) -> None:
        """Draw text with its top-left corner at a pixel position (unless told otherwise)."""
        kw.setdefault("va", "top")
        kw.setdefault("ha", "left")
        kw.setdefault("color", TEXT)
        self.fig.text(left / self.w, 1 - top / self.h, s, **kw)

    def line(self, x0: float, x1: float, y: float, color: str, width: float = 2.0) -> None:
        """Draw a horizontal line at pixel height `y`."""
        from matplotlib.lines import Line2D

        self.fig.add_artist(
            Line2D(
                [x0 / self.w, x1 / self.w], [1 - y / self.h] * 2, color=color, linewidth=width, solid_capstyle="butt"
            )
        )

    def box(self, left: float, top: float, width: float, height: float) -> None:
        """Draw a panel's background."""
        from matplotlib.patches import FancyBboxPatch

        x, y, w, h = self.rect(left, top, width, height)
        self.fig.add_artist(
            FancyBboxPatch(
                (x, y),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=0.003",
                facecolor=PANEL_BG,
                edgecolor=PANEL_BORDER,
                linewidth=1.0,
                transform=self.fig.transFigure,
                zorder=-10,
            )
        )


LEGEND_FONT = 8.5
CHAR_PX = 0.62 * LEGEND_FONT * 100 / 72  # rough advance of a DejaVu Sans character, px


def legend_rows(labels: Sequence[str], width: float) -> list[list[int]]:
    """Wrap legend entries into rows that fit `width` pixels, like Grafana's list legend."""
    rows: list[list[int]] = [[]]
    used = 0.0
    for i, label in enumerate(labels):
        need = 22 + len(label) * CHAR_PX + 14
        if rows[-1] and used + need > width:
            rows.append([])
            used = 0.0
        rows[-1].append(i)
        used += need
    return rows if rows[0] else []


def style_axes(ax: Axes) -> None:
    """Give an axes Grafana's dark look: no frame, faint grid, dim tick labels."""
    ax.set_facecolor(PANEL_BG)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(colors=TEXT_DIM, labelsize=8.5, length=0, pad=4)


def date_num(epoch_s: float) -> float:
    """Convert epoch seconds to matplotlib's date number (days since its 1970 epoch)."""
    return epoch_s / 86_400


def draw_timeseries(page: Page, panel: Panel, series: list[Series], cap: Capture, box: tuple[float, ...]) -> None:
    """Draw a timeseries panel: lines on a time axis, legend list below."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    left, top, width, height = box
    live = [s for s in series if any(not math.isnan(v) for v in s.values)]
    if not live:
        page.text(left + width / 2, top + height / 2, "No data", ha="center", va="center", color=TEXT_DIM, size=13)
        return
    rows = legend_rows([s.legend for s in live], width - 24)
    legend_h = 16 * len(rows) + 6
    ax_top = top + 34
    ax_h = height - 34 - 22 - legend_h
    finite = [v for s in live for v in s.values if not math.isnan(v)]
    lo, hi = min(min(finite), 0.0), max(finite)
    if hi <= lo:
        hi = lo + 1.0
    top_y = hi + (hi - lo) * 0.08
    ticks = [
        float(t)
        for t in MaxNLocator(nbins=max(2, int(ax_h // 38)), steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        if lo <= t <= top_y
    ]
    labels = format_ticks(ticks, panel.unit)
    pad = max(len(t) for t in labels) * 6.4 + 16
    ax_left, ax_w = left + pad, width - pad - 14
    ax = page.fig.add_axes(page.rect(ax_left, ax_top, ax_w, ax_h))
    style_axes(ax)
    times = [date_num(t) for t in cap.times]
    if cap.campaign_wall:
        ax.axvspan(date_num(cap.campaign_wall[0]), date_num(cap.campaign_wall[1]), color="#ffffff", alpha=0.05, lw=0)
    for i, s in enumerate(live):
        color = PALETTE[i % len(PALETTE)]
        # A line drawn over an equal one would hide it (the conservation panel's lines meet):
        # with few series, earlier lines are wider so they show around later ones.
        width_px = 1.4 + (1.6 * (len(live) - 1 - i) / (len(live) - 1) if 1 < len(live) <= 3 else 0.0)
        ax.plot(times, s.values, color=color, linewidth=width_px)
        ax.fill_between(times, s.values, color=color, alpha=0.06, linewidth=0)
    ax.set_ylim(lo, top_y)
    ax.set_xlim(times[0], times[-1])
    ax.set_yticks(ticks, labels)
    locator = mdates.AutoDateLocator(tz=UTC, minticks=3, maxticks=max(3, int(ax_w // 75)))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    span = times[-1] - times[0]
    # Like Grafana, no time label right at an edge, where it would run into the y labels.
    ax.set_xticks([float(t) for t in ax.get_xticks() if 0.04 * span < t - times[0] <= span])
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
    y = ax_top + ax_h + 26
    for row in rows:
        x = left + 12
        for i in row:
            label = live[i].legend
            page.line(x, x + 14, y + 7, PALETTE[i % len(PALETTE)], width=3)
            page.text(x + 19, y + 7, label, va="center", size=LEGEND_FONT, color=TEXT)
            x += 22 + len(label) * CHAR_PX + 14
        y += 16


def draw_stat(page: Page, panel: Panel, series: list[Series], cap: Capture, box: tuple[float, ...]) -> None:
    """Draw a stat panel: the last value, large, over an area sparkline (Grafana's defaults)."""
    left, top, width, height = box
    live = [s for s in series if any(not math.isnan(v) for v in s.values)]
    if not live:
        page.text(left + width / 2, top + height / 2, "No data", ha="center", va="center", color=TEXT_DIM, size=13)
        return
    s = live[0]
    finite = [v for v in s.values if not math.isnan(v)]
    ax = page.fig.add_axes(page.rect(left + 1, top + height * 0.6, width - 2, height * 0.4 - 1))
    ax.set_axis_off()
    xs = list(range(len(s.values)))
    ax.fill_between(xs, s.values, color=STAT_COLOR, alpha=0.15, linewidth=0)
    ax.plot(xs, s.values, color=STAT_COLOR, linewidth=1.2, alpha=0.8)
    ax.set_xlim(0, len(xs) - 1)
    hi = max(finite)
    ax.set_ylim(min(0.0, min(finite)), hi * 1.05 if hi > 0 else 1.0)
    text = format_value(finite[-1], panel.unit)
    size = min(30.0, (width - 24) / (len(text) * 0.66 * 100 / 72))
    page.text(
        left + width / 2,
        top + height * 0.42,
        text,
        ha="center",
        va="center",
        size=size,
        color=STAT_COLOR,
        weight="bold",
    )
    if max(finite) != finite[-1]:
        page.text(
            left + width - 10,
            top + 10,
            f"max {format_value(max(finite), panel.unit)}",
            ha="right",
            size=8.5,
            color=TEXT_DIM,
        )


def render(title: str, panels: list[Panel], cap: Capture, out: Path, layout: Layout = Layout()) -> None:
    """Draw the dashboard to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(p.y + p.h for p in panels)
    height = layout.height(rows)
    fig = plt.figure(figsize=(layout.width / 100, height / 100), dpi=100, facecolor=BG)
    page = Page(fig, layout.width, height)
    m = layout.margin
    t0 = datetime.fromtimestamp(cap.start, UTC)
    t1 = datetime.fromtimestamp(cap.end, UTC)
    page.text(m + 4, 14, f"Dashboards / {title}", size=16, weight="bold")
    page.text(m + 4, 44, CAPTION, size=12, color=CAPTION_COLOR, weight="bold")
    alerts = ", ".join(cap.alerts) if cap.alerts else "none"
    page.text(m + 4, 68, f"Alerts of ops/prometheus/alerts.yml pending or firing during the run: {alerts}", size=9.5)
    page.text(
        layout.width - m - 4,
        16,
        f"{t0:%Y-%m-%d %H:%M:%S} to {t1:%H:%M:%S} UTC  ({(cap.end - cap.start) / 60:.1f} min)",
        ha="right",
        size=11,
    )
    col = layout.col()
    for panel, series in zip(panels, cap.series, strict=True):
        left = m + panel.x * col + layout.gap / 2
        top = layout.header + panel.y * layout.row + layout.gap / 2
        width = panel.w * col - layout.gap
        ph = panel.h * layout.row - layout.gap
        if panel.kind == "row":
            # Grafana draws a row as its title over a rule, no panel box.
            page.text(left + 4, top + ph / 2, panel.title, va="center", size=13, weight="bold")
            page.line(left, left + width, top + ph, PANEL_BORDER, width=1.0)
            continue
        page.box(left, top, width, ph)
        page.text(left + 10, top + 8, panel.title, size=10.5, weight="bold")
        box = (left, top, width, ph)
        if panel.kind == "stat":
            draw_stat(page, panel, series, cap, box)
        else:
            draw_timeseries(page, panel, series, cap, box)
    y = layout.header + rows * layout.row + 8
    for fact in cap.facts:
        for line in textwrap.wrap(fact, width=int((layout.width - 2 * m) / 7.0)):
            page.text(m + 4, y, line, size=9, color=TEXT_DIM)
            y += 15
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, facecolor=BG)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png", help="PNG to write")
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis of the read model")
    p.add_argument("--prometheus", default="/usr/bin/prometheus", help="Prometheus binary")
    p.add_argument("--workers", type=int, default=2, help="workers of `stockguard run` (default 2)")
    p.add_argument("--hours", type=float, default=4.0, help="simulated hours (default 4)")
    p.add_argument("--speed", type=float, default=60.0, help="event time per wall time (default 60)")
    p.add_argument("--events-per-hour", type=int, default=30_000, help="baseline clickstream events per hour")
    p.add_argument("--campaign-start", type=float, default=1.5, help="campaign start, simulated hour (default 1.5)")
    p.add_argument("--campaign-hours", type=float, default=1.5, help="campaign length (default 1.5)")
    p.add_argument(
        "--linger-ms",
        type=float,
        default=0.0,
        help="producer linger.ms (default 0; `stockguard loadgen` uses 5, which the latency then includes)",
    )
    p.add_argument("--seed", type=int, default=42, help="simulation seed (default 42)")
    p.add_argument("--lead-in", type=float, default=10.0, help="idle seconds before the load (default 10)")
    p.add_argument("--hold", type=float, default=10.0, help="seconds kept after the input is read (default 10)")
    p.add_argument("--step", type=float, default=2.0, help="query_range step, seconds (default 2)")
    p.add_argument("--keep", action="store_true", help="keep the topics, Redis keys and Prometheus data")
    p.add_argument("--save-capture", type=Path, help="also write the queried series to this JSON file")
    p.add_argument("--from-capture", type=Path, help="render a saved capture instead of running (no services)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, query and render; return the exit code."""
    args = parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:
        log("matplotlib is missing: pip install matplotlib (into this environment)")
        return 2
    if not Path(args.prometheus).exists():
        log(f"no Prometheus binary at {args.prometheus} (apt-get install prometheus, or --prometheus PATH)")
        return 2
    title, panels = load_panels(DASHBOARD)
    if args.from_capture:
        render(title, panels, load_capture(args.from_capture), args.out)
        log(f"wrote {args.out} from {args.from_capture}")
        return 0
    start_ts = int(time.time() // 60 * 60 * 1000)  # event time starts at the run's minute
    sim = SimConfig(
        seed=args.seed,
        start_ts=start_ts,
        hours=args.hours,
        campaign_start_h=args.campaign_start,
        campaign_hours=args.campaign_hours,
        events_per_hour=args.events_per_hour,
    )
    cfg = RunConfig(
        bootstrap=args.bootstrap,
        redis_url=args.redis_url,
        prometheus=args.prometheus,
        workers=args.workers,
        sim=sim,
        speed=args.speed,
        linger_ms=args.linger_ms,
        lead_in=args.lead_in,
        hold=args.hold,
        drain_timeout=180.0,
        step=args.step,
        keep=args.keep,
    )
    began = time.monotonic()
    try:
        cap = capture(cfg, panels)
    except RunError as exc:
        log(f"error: {exc}")
        return 1
    if args.save_capture:
        save_capture(cap, args.save_capture)
    render(title, panels, cap, args.out)
    log(f"wrote {args.out} in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
