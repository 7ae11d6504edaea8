"""The live job on Kafka (and Redis): `stockguard run`, `stockguard topics create`.

Also runnable with Bytewax's own runner:

    python -m bytewax.run "stockguard.live:get_flow()" -w 2 -r RECOVERY_DIR -s 10 -b 60

Recovery keeps the decision state and the input offsets in SQLite partitions, so a
restart resumes from the last snapshot instead of re-reading the topics.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.outputs import Sink

from config.settings import Settings, load_settings
from connectors.kafka import KafkaInput, KafkaOutput
from connectors.metrics import CampaignGauges, input_names
from flows.dataflow import build_flow
from flows.records import CampaignView, StockView
from stockguard.observability import setup_logging, start_health_server

__all__ = ["build_live_flow", "create_topics", "get_flow", "run_live"]

log = logging.getLogger("stockguard")


def _recovery_requested() -> bool:
    argv = sys.argv
    in_argv = "-r" in argv or any(a.startswith("--recovery-dir") for a in argv)
    return bool(os.environ.get("BYTEWAX_RECOVERY_DIRECTORY")) or in_argv


def build_live_flow(settings: Settings, recovery: bool) -> Dataflow:
    """Build the decision flow from the input topics to the output topics (and Redis)."""
    conf = settings.kafka.client_config()
    source = KafkaInput(
        conf,
        settings.topics.inputs(),
        groups=settings.kafka.source_groups or 1,
        from_end=not settings.kafka.from_beginning,
        idle_poll_ms=settings.kafka.idle_poll_ms,
        input_names=input_names(settings),
    )
    sink = KafkaOutput(conf, parts=settings.kafka.sink_parts, flush_timeout=settings.kafka.flush_timeout / 1000)
    views: list[Sink[StockView | CampaignView]] = [CampaignGauges()]
    if settings.redis.enabled:
        from connectors.redis_view import RedisViewSink

        views.append(
            RedisViewSink(
                settings.redis.url.get_secret_value(), prefix=settings.redis.prefix, ttl_s=settings.redis.ttl // 1000
            )
        )
    return build_flow(settings, {"kafka": source}, {"kafka": sink}, views=views, recovery=recovery)


def get_flow() -> Dataflow:
    """Build the live flow from the environment's settings, for `python -m bytewax.run`."""
    # bytewax.run's own precedence: a flag on the command line, else its environment variable.
    pid = int(_arg_after("-i", "--process-id") or os.environ.get("BYTEWAX_PROCESS_ID") or 0)
    workers = int(_arg_after("-w", "--workers-per-process") or os.environ.get("BYTEWAX_WORKERS_PER_PROCESS") or 1)
    addresses = _arg_after("-a", "--addresses") or os.environ.get("BYTEWAX_ADDRESSES") or ""
    processes = max(1, len([a for a in addresses.split(";") if a]))
    settings = load_settings().with_workers(workers * processes)
    prepare_process(settings, pid, workers=workers)
    return build_live_flow(settings, recovery=bool(settings.recovery_dir) or _recovery_requested())


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
    """Set up what a live process serves: metrics with Bytewax's, health, JSON logs."""
    # Bytewax serves its own metrics and the prometheus_client registry (ours) on one port.
    os.environ.setdefault("BYTEWAX_DATAFLOW_API_ENABLED", "true")
    os.environ.setdefault("BYTEWAX_DATAFLOW_API_PORT", str(settings.metrics_port + pid))
    setup_logging(settings.log_format, settings.log_level)
    start_health_server(settings.health_host, settings.health_port + pid)
    log.info(
        "starting",
        extra={
            "sg_workers": workers,
            "sg_process_id": pid,
            "sg_metrics_port": int(os.environ["BYTEWAX_DATAFLOW_API_PORT"]),
            "sg_health_port": settings.health_port + pid,
            "sg_recovery": recovery,
        },
    )


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
    rdir = recovery_dir or settings.recovery_dir
    if rdir:
        path = Path(rdir)
        if not path.exists() or not any(path.glob("part-*.sqlite3")):
            path.mkdir(parents=True, exist_ok=True)
            # Partition count is fixed forever once created; one per core is plenty here.
            init_db_dir(path, max(1, workers))  # type: ignore[no-untyped-call]
        recovery_config = RecoveryConfig(str(path), timedelta(seconds=backup_interval_s))  # type: ignore[no-untyped-call]
    flow = build_live_flow(settings, recovery=recovery_config is not None)
    cli_main(  # type: ignore[no-untyped-call]
        flow,
        workers_per_process=workers,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=timedelta(milliseconds=settings.snapshot_interval if rdir else settings.epoch_interval),
        recovery_config=recovery_config,
    )


def create_topics(settings: Settings, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Create every contract topic that does not exist yet; return (topic, outcome) pairs."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    k = settings.kafka
    t = settings.topics
    admin = AdminClient(dict[str, str | int | float | bool](k.client_config()))
    existing = set(admin.list_topics(timeout=timeout).topics)
    compacted = {t.products, t.campaigns}
    new = []
    results: list[tuple[str, str]] = []
    for topic in (*t.inputs(), *t.outputs()):
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
