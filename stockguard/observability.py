"""Health endpoints and structured JSON logs of a live stockguard process.

Metrics (`/metrics`, the default prometheus_client registry, where ours live) are served
on `metrics_host:metrics_port`; Bytewax's own API server (with its `bytewax_*` metrics) only
when `bytewax_api_port` is set, since it always binds 0.0.0.0. Health is served on
`health_host:health_port`: `/healthz` (liveness) and `/readyz` (readiness), JSON bodies,
200 or 503. Both hosts default to loopback; the container image sets 0.0.0.0. Logs are one
JSON object a line, with no customer data: customer ids are written only through
`customer_ref`, a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import start_http_server

from stockguard.connectors.health import HEALTH, Health

__all__ = ["JsonFormatter", "customer_ref", "setup_logging", "start_health_server", "start_metrics_server"]


def customer_ref(customer_id: str, key: bytes) -> str:
    """Return a keyed hash of a customer id: stable for correlation, useless to read back."""
    return hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()[:16]


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render time, level, logger, message and any `extra` fields."""
        doc: dict[str, Any] = {
            "ts": int(record.created * 1000),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        for k, v in record.__dict__.items():
            if k.startswith("sg_"):
                doc[k[3:]] = v
        return orjson.dumps(doc, default=str).decode()


def setup_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Send logs to stderr as JSON lines (or plain text for a terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path.startswith("/healthz"):
                ok = health.live()
            elif self.path.startswith("/readyz"):
                ok = health.ready()
            else:
                self.send_response(404)
                self.end_headers()
                return
            body = orjson.dumps(health.report())
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
            return  # probes every few seconds would drown the logs

    return HealthHandler


def start_health_server(host: str, port: int, health: Health = HEALTH) -> ThreadingHTTPServer:
    """Serve /healthz and /readyz from a daemon thread; return the server."""
    server = ThreadingHTTPServer((host, port), _handler(health))
    threading.Thread(target=server.serve_forever, name="stockguard-health", daemon=True).start()
    return server


def start_metrics_server(host: str, port: int) -> None:
    """Serve /metrics from the default registry on `host:port`, from a daemon thread."""
    start_http_server(port, addr=host)
