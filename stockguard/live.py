"""The live job on Kafka (and Redis): `stockguard run`, `stockguard topics create`.

Also runnable with Bytewax's own runner:

    python -m bytewax.run "stockguard.live:get_flow()" -w 2 -r RECOVERY_DIR -s 10 -b 60

Recovery keeps the decision state and the input offsets in SQLite partitions, so a
restart resumes from the last snapshot instead of re-reading the topics; the decisions
made since that snapshot are read back from the output topics (the journal) and kept.

SIGTERM or SIGINT stops the job gracefully: the sources end, the flow finishes its batch,
flushes and acknowledges its outputs, snapshots, and the process exits 0 (a watchdog exits
1 after `shutdown_timeout`; a second signal exits at once).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from bytewax.dataflow import Dataflow
from bytewax.outputs import Sink

from stockguard.config.settings import Settings, load_settings
from stockguard.connectors.health import STOP
from stockguard.connectors.journal import KafkaJournal
from stockguard.connectors.kafka import KafkaInput, KafkaOutput, KafkaProbe
from stockguard.connectors.metrics import CampaignGauges
from stockguard.connectors.stock_views import StockViewSink
from stockguard.flows.dataflow import build_flow
from stockguard.flows.metrics import input_names
from stockguard.flows.records import CampaignView, OutRecord, StockView
from stockguard.observability import setup_logging, start_health_server, start_metrics_server

__all__ = ["build_live_flow", "create_topics", "get_flow", "run_live"]

log = logging.getLogger("stockguard")


def _recovery_requested() -> bool:
    argv = sys.argv
    in_argv = "-r" in argv or any(a.startswith("--recovery-dir") for a in argv)
    return bool(os.environ.get("BYTEWAX_RECOVERY_DIRECTORY")) or in_argv


STORE_MARKER = "stockguard-store.json"


def store_created_ms(rdir: Path) -> int:
    """Return when stockguard first used a recovery store (written on first use).

    A store of unknown age (made by Bytewax's own tool) counts as old as the topics: its
    journal, when needed, is read from their beginning.
    """
    marker = rdir / STORE_MARKER
    try:
        created = orjson.loads(marker.read_bytes())["created_ms"]
        if type(created) is int:
            return created
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        pass
    fresh = not any(rdir.glob("part-*.sqlite3"))
    created = time.time_ns() // 1_000_000 if fresh else 0
    try:
        marker.write_bytes(orjson.dumps({"created_ms": created}))
    except OSError as exc:
        log.warning("cannot write %s: %s", marker, exc.strerror)
    return created


def build_live_flow(settings: Settings, recovery: bool, created_ms: int | None = None) -> Dataflow:
    """Build the decision flow from the input topics to the output topics (and Redis)."""
    conf = settings.kafka.client_config()
    k = settings.kafka
    tolerance_s = k.outage_tolerance / 1000
    source = KafkaInput(
        conf,
        settings.topics.inputs(),
        groups=k.source_groups or 1,
        from_end=not k.from_beginning,
        idle_poll_ms=k.idle_poll_ms,
        input_names=input_names(settings),
        merge_wait_ms=k.merge_wait,
        merge_buffer=k.merge_buffer,
        outage_tolerance_s=tolerance_s,
    )
    sink = KafkaOutput(
        conf,
        parts=k.sink_parts,
        flush_timeout=k.flush_timeout / 1000,
        settings=settings,
        outage_tolerance_s=tolerance_s,
    )
    journal = None
    if recovery and created_ms is not None:
        journal = KafkaJournal(conf, settings, created_ms)
    views: list[Sink[StockView | CampaignView]] = [CampaignGauges()]
    if settings.publish_stock_views:
        views.append(StockViewSink(conf, settings.topics.stock_views))
    if settings.redis.enabled:
        from stockguard.connectors.redis_view import RedisViewSink

        views.append(
            RedisViewSink(
                settings.redis.url.get_secret_value(), prefix=settings.redis.prefix, ttl_s=settings.redis.ttl // 1000
            )
        )
    sinks: dict[str, Sink[OutRecord] | Sink[tuple[str, OutRecord]]] = {"kafka": sink}
    if settings.redis.enabled:
        from stockguard.connectors.redis_view import RedisDecisionSink

        # Each decision, for the send-time check (GET /v1/triggers/{id} on the gateway).
        r = settings.redis
        sinks["redis_decisions"] = RedisDecisionSink(
            r.url.get_secret_value(), settings.topics, prefix=r.prefix, ttl_s=r.decision_ttl // 1000
        )
    return build_flow(settings, {"kafka": source}, sinks, views=views, recovery=recovery, journal=journal)


def get_flow() -> Dataflow:
    """Build the live flow from the environment's settings, for `python -m bytewax.run`."""
    # bytewax.run's own precedence: a flag on the command line, else its environment variable.
    pid = int(_arg_after("-i", "--process-id") or os.environ.get("BYTEWAX_PROCESS_ID") or 0)
    workers = int(_arg_after("-w", "--workers-per-process") or os.environ.get("BYTEWAX_WORKERS_PER_PROCESS") or 1)
    addresses = _arg_after("-a", "--addresses") or os.environ.get("BYTEWAX_ADDRESSES") or ""
    processes = max(1, len([a for a in addresses.split(";") if a]))
    settings = load_settings().with_workers(workers * processes)
    rdir = _arg_after("-r", "--recovery-directory") or os.environ.get("BYTEWAX_RECOVERY_DIRECTORY") or ""
    recovery = bool(rdir) or _recovery_requested()
    prepare_process(settings, pid, workers=workers, recovery=recovery)
    created = store_created_ms(Path(rdir)) if rdir and Path(rdir).is_dir() else None
    return build_live_flow(settings, recovery=recovery, created_ms=created)


def _arg_after(*flags: str) -> str | None:
    """Return the value of the first of `flags` in argv (`-w 2`, `--flag 2`, `--flag=2`)."""
    argv = sys.argv
    for i, arg in enumerate(argv):
        for flag in flags:
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if flag.startswith("--") and arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def prepare_process(settings: Settings, pid: int, workers: int, recovery: bool = False) -> None:
    """Set up what a live process serves: metrics, health, the Kafka probe, logs, signals."""
    setup_logging(settings.log_format, settings.log_level)
    if settings.bytewax_api_port:
        # Opt-in: Bytewax's API server binds 0.0.0.0 (it has no host setting).
        os.environ["BYTEWAX_DATAFLOW_API_ENABLED"] = "true"
        os.environ["BYTEWAX_DATAFLOW_API_PORT"] = str(settings.bytewax_api_port + pid)
    start_metrics_server(settings.metrics_host, settings.metrics_port + pid)
    start_health_server(settings.health_host, settings.health_port + pid)
    KafkaProbe(
        settings.kafka.client_config(), settings.kafka.outage_tolerance / 1000, topic=settings.topics.triggers
    ).start()
    install_stop_handlers(settings.shutdown_timeout / 1000)
    log.info(
        "starting",
        extra={
            "sg_workers": workers,
            "sg_process_id": pid,
            "sg_metrics": f"{settings.metrics_host}:{settings.metrics_port + pid}",
            "sg_health": f"{settings.health_host}:{settings.health_port + pid}",
            "sg_bytewax_api_port": settings.bytewax_api_port + pid if settings.bytewax_api_port else None,
            "sg_recovery": recovery,
        },
    )


def install_stop_handlers(timeout_s: float) -> None:
    """Stop gracefully on SIGTERM and SIGINT; a second signal, or the timeout, exits now."""

    def watchdog(name: str) -> None:
        time.sleep(timeout_s)
        log.error("did not stop within shutdown_timeout after %s: exiting", name, extra={"sg_timeout_s": timeout_s})
        logging.shutdown()
        os._exit(1)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if STOP.is_set():
            log.warning("second %s: exiting now, without a final snapshot", name)
            logging.shutdown()
            os._exit(128 + signum)
        STOP.set()
        log.info("stopping: draining, flushing and snapshotting", extra={"sg_signal": name})
        threading.Thread(target=watchdog, args=(name,), name="stockguard-stop-watchdog", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run_live(
    settings: Settings,
    workers: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    recovery_dir: str | None = None,
    backup_interval_s: float = 60.0,
) -> None:
    """Run the live flow in this process until it fails or is stopped."""
    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig, init_db_dir

    settings = settings.with_workers(workers * (len(addresses) if addresses else 1))
    prepare_process(settings, process_id or 0, workers, recovery=bool(recovery_dir or settings.recovery_dir))
    recovery_config: Any = None
    created_ms: int | None = None
    rdir = recovery_dir or settings.recovery_dir
    if rdir:
        path = Path(rdir)
        path.mkdir(parents=True, exist_ok=True)
        # Before the store's files exist: a new store is read back from now on.
        created_ms = store_created_ms(path)
        if not path.exists() or not any(path.glob("part-*.sqlite3")):
            path.mkdir(parents=True, exist_ok=True)
            # Partition count is fixed forever once created; one per core is plenty here.
            init_db_dir(path, max(1, workers))  # type: ignore[no-untyped-call]
        recovery_config = RecoveryConfig(str(path), timedelta(seconds=backup_interval_s))  # type: ignore[no-untyped-call]
    flow = build_live_flow(settings, recovery=recovery_config is not None, created_ms=created_ms)
    started = time.monotonic()
    cli_main(  # type: ignore[no-untyped-call]
        flow,
        workers_per_process=workers,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=timedelta(milliseconds=settings.snapshot_interval if rdir else settings.epoch_interval),
        recovery_config=recovery_config,
    )
    log.info("stopped", extra={"sg_graceful": STOP.is_set(), "sg_ran_s": round(time.monotonic() - started, 1)})


def create_topics(settings: Settings, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Create every contract topic that does not exist yet; return (topic, outcome) pairs."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    k = settings.kafka
    t = settings.topics
    admin = AdminClient(dict[str, str | int | float | bool](k.client_config()))
    existing = set(admin.list_topics(timeout=timeout).topics)
    compacted = {t.products, t.campaigns, t.stock_views}
    new = []
    results: list[tuple[str, str]] = []
    for topic in (*t.inputs(), *t.outputs(), *t.delivery()):
        if topic in existing:
            results.append((topic, "exists"))
            continue
        config = {"cleanup.policy": "compact"} if topic in compacted else {"retention.ms": str(k.retention)}
        new.append(NewTopic(topic, num_partitions=k.partitions, replication_factor=k.replication_factor, config=config))
    if new:
        for topic, fut in admin.create_topics(new, request_timeout=timeout).items():
            try:
                fut.result()
                policy = "compacted" if topic in compacted else f"retention {k.retention // 3_600_000} h"
                results.append((topic, f"created ({k.partitions} partitions, {policy})"))
            except KafkaException as exc:
                results.append((topic, f"failed: {exc.args[0].str()}"))
    return results
