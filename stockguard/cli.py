"""The `stockguard` command: replay files, run the demo, show settings."""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from stockguard.config.settings import Settings, SettingsError, describe, load_settings
from stockguard.connectors.files import JsonlSink, OutputStats, ReplaySource
from stockguard.summary import print_table, summary_rows

__all__ = ["main"]


class Progress:
    """Draw a progress bar on stderr: redrawn in place on a terminal, by tenths otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.last_tenth = -1
        self.lines = 0

    def __call__(self, pos: int, size: int, lines: int) -> None:
        """Report `pos` of `size` bytes read, `lines` lines."""
        self.lines = lines
        now = time.monotonic()
        frac = pos / size if size else 1.0
        if self.tty:
            if now - self.last < 0.1 and pos < size:
                return
            self.last = now
            width = 30
            done = int(frac * width)
            rate = lines / max(now - self.start, 1e-9)
            self.stream.write(
                f"\r[{'#' * done}{'.' * (width - done)}] {frac:6.1%} {lines:>11,} lines {rate:>10,.0f} ev/s"
            )
            if pos >= size:
                self.stream.write("\n")
            self.stream.flush()
        else:
            tenth = int(frac * 10)
            if tenth > self.last_tenth:
                self.last_tenth = tenth
                self.stream.write(f"replay: {frac:.0%} ({lines:,} lines)\n")
                self.stream.flush()


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Replay a JSON-lines file through the dataflow, writing one file per output topic."""
    from stockguard.flows.dataflow import build_flow
    from stockguard.flows.runner import run_local

    src = Path(args.input)
    if not src.is_file():
        print(f"stockguard replay: no such file: {src}", file=sys.stderr)
        return 2
    stats = OutputStats()
    progress = Progress()
    flow = build_flow(
        settings,
        {"replay": ReplaySource(src, progress=progress, limits=settings.input)},
        {"files": JsonlSink(args.out, stats)},
    )
    start = time.monotonic()
    run_local(flow, settings.epoch_interval)
    seconds = time.monotonic() - start
    print_table(summary_rows(settings, stats, progress.lines, seconds))
    print(f"outputs in {args.out}/<topic>.jsonl")
    if args.report:
        from stockguard.report import write_report

        page = Path(args.out) / "report.html"
        write_report(settings, Path(args.out), page, src)
        print(f"report: {page}")
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Write the day's report of an output directory as one HTML page."""
    from stockguard.report import write_report

    out_dir = Path(args.dir)
    if not out_dir.is_dir():
        print(f"stockguard report: no such directory: {out_dir}", file=sys.stderr)
        return 2
    src = Path(args.input) if args.input else None
    if src is not None and not src.is_file():
        print(f"stockguard report: no such file: {src}", file=sys.stderr)
        return 2
    page = Path(args.html) if args.html else out_dir / "report.html"
    try:
        write_report(settings, out_dir, page, src)
    except ValueError as exc:
        print(f"stockguard report: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as exc:
        print(f"stockguard report: {out_dir} does not hold stockguard's outputs ({exc!r})", file=sys.stderr)
        return 2
    print(f"report: {page}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the embedded Cyber Monday simulation through the dataflow, no broker needed."""
    if args.via_gateway:
        from stockguard.via_gateway import run_demo_via_gateway

        return run_demo_via_gateway(settings, seed=args.seed, speed=args.speed, out_dir=args.out, hours=args.hours)
    from stockguard.demo import run_demo

    return run_demo(settings, seed=args.seed, speed=args.speed, out_dir=args.out, hours=args.hours)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the live job on Kafka until stopped."""
    from stockguard.live import run_live

    addresses = args.addresses.split(";") if args.addresses else None
    if args.process_id is not None and not addresses:
        print("stockguard run: -i needs -a with every process address", file=sys.stderr)
        return 2
    print(
        f"stockguard run: brokers {settings.kafka.bootstrap_servers}, {args.workers} worker(s), "
        f"recovery {'in ' + args.recovery_dir if args.recovery_dir else 'off'}",
        file=sys.stderr,
    )
    run_live(
        settings,
        workers=args.workers,
        process_id=args.process_id,
        addresses=addresses,
        recovery_dir=args.recovery_dir,
        backup_interval_s=args.backup_interval,
    )
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    """Create the contract's topics."""
    from stockguard.live import create_topics

    rows = create_topics(settings)
    print_table(rows)
    return 1 if any(outcome.startswith("failed") for _, outcome in rows) else 0


def cmd_loadgen(args: argparse.Namespace, settings: Settings) -> int:
    """Produce simulated days to Kafka."""
    if args.via_gateway:
        from stockguard.via_gateway import run_loadgen_via_gateway

        speed = 1.0 if args.speed is None else args.speed
        return run_loadgen_via_gateway(
            settings,
            args.via_gateway,
            seed=args.seed,
            speed=speed,
            hours=args.hours,
            stripe_port=args.stripe_port,
            stripe_host=args.stripe_host,
        )
    from stockguard.loadgen import run_loadgen

    return run_loadgen(
        settings, seed=args.seed, speed=60.0 if args.speed is None else args.speed, loops=args.loops, hours=args.hours
    )


def cmd_deliver(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver decisions and stock to one vendor until stopped."""
    from stockguard.deliver import run_deliverer

    run_deliverer(settings, args.system, args.port)
    return 0


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    """Poll a marketplace's new orders into `shop.orders` until stopped (or once)."""
    from stockguard.poll import run_poller

    return run_poller(settings, args.system, args.port, once=args.once)


def cmd_fake_vendors(args: argparse.Namespace, settings: Settings) -> int:
    """Serve local fakes of Klaviyo, Braze and Shoppingfeed (never the real ones)."""
    from stockguard.fake_vendors import serve_fakes

    serve_fakes(args.host, args.port, args.delay_ms / 1000)
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the shop systems' webhooks into the input topics."""
    from stockguard.gateway import run_gateway

    run_gateway(settings)
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Turn a vendor's recorded export into a replay file."""
    from stockguard.imports import import_ga4

    paths = [Path(p) for p in args.inputs]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"stockguard import: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rejects = Path(args.rejects) if args.rejects else out.with_name(out.stem + ".rejects.jsonl")
    stats = import_ga4(settings, paths, out, rejects)
    rows = [("export rows read", f"{stats.rows:,}"), ("events skipped (names we do not use)", f"{stats.skipped:,}")]
    rows += [(f"messages to {topic}", f"{n:,}") for topic, n in sorted(stats.written.items())]
    rows.append(("rows rejected", f"{stats.rejected:,}" + (f" (see {rejects})" if stats.rejected else "")))
    print_table(rows)
    print(f"replay file: {out}   (stockguard replay {out} --out DIR)")
    return 1 if stats.rows and stats.rejected == stats.rows else 0


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Print every setting, its value (secrets masked) and its env var."""
    rows = describe(settings)
    w1 = max(len(r[0]) for r in rows)
    w2 = min(max(len(r[1]) for r in rows), 40)
    for name, value, env in rows:
        print(f"{name:<{w1}}  {value:<{w2}}  {env}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    p = argparse.ArgumentParser(prog="stockguard", description=__doc__)
    p.add_argument("--config", help="TOML settings file (also STOCKGUARD_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="replay a JSON-lines file of input messages, no broker")
    r.add_argument("input", help="replay file: one {topic, key, value|raw} object a line")
    r.add_argument("--out", required=True, help="directory for <topic>.jsonl outputs")
    r.add_argument("--config", dest="sub_config", help="TOML settings file")
    r.add_argument("--report", action="store_true", help="also write <out>/report.html, the day in pictures")
    r.set_defaults(func=cmd_replay)

    rp = sub.add_parser("report", help="write the day's report (HTML) of a replay or demo output directory")
    rp.add_argument("dir", help="the output directory (<topic>.jsonl files)")
    rp.add_argument("--input", help="the replay file it came from (campaign money, margins kept)")
    rp.add_argument("--html", help="where to write the page (default <dir>/report.html)")
    rp.add_argument("--config", dest="sub_config", help="TOML settings file")
    rp.set_defaults(func=cmd_report)

    d = sub.add_parser("demo", help="simulate a compressed Cyber Monday through the dataflow")
    d.add_argument("--seed", type=int, default=42, help="simulation seed (default 42)")
    d.add_argument("--speed", type=float, default=1440.0, help="event time per wall time (default 1440: 24 h in 60 s)")
    d.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    d.add_argument("--out", default="out/demo", help="directory for <topic>.jsonl outputs (default out/demo)")
    d.add_argument(
        "--via-gateway",
        action="store_true",
        help="send the day as signed Shopify/Stripe/Klaviyo/Braze/GA4 webhooks through an in-process gateway",
    )
    d.add_argument("--config", dest="sub_config", help="TOML settings file")
    d.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run the live job on Kafka (and the Redis read model)")
    run.add_argument("-w", "--workers", type=int, default=1, help="workers in this process (default 1)")
    run.add_argument("-i", "--process-id", type=int, help="this process's index in a cluster")
    run.add_argument("-a", "--addresses", help='every process address, "host:port;host:port"')
    run.add_argument("-r", "--recovery-dir", help="recovery directory (SQLite); created when missing")
    run.add_argument("-b", "--backup-interval", type=float, default=60.0, help="seconds of old snapshots kept")
    run.add_argument("--config", dest="sub_config", help="TOML settings file")
    run.set_defaults(func=cmd_run)

    tp = sub.add_parser("topics", help="manage the contract's Kafka topics")
    tp.add_argument("action", choices=["create"], help="create every missing topic")
    tp.add_argument("--config", dest="sub_config", help="TOML settings file")
    tp.set_defaults(func=cmd_topics)

    lg = sub.add_parser("loadgen", help="produce the demo simulator's events to Kafka")
    lg.add_argument("--seed", type=int, default=42, help="simulation seed (default 42)")
    lg.add_argument("--speed", type=float, help="event time per wall time (default 60; 1 with --via-gateway)")
    lg.add_argument("--hours", type=float, default=24.0, help="simulated hours per day (default 24)")
    lg.add_argument("--loops", type=int, default=1, help="days to produce (default 1)")
    lg.add_argument("--via-gateway", metavar="URL", help="send the day as signed webhooks to the gateway at URL")
    lg.add_argument(
        "--stripe-port", type=int, default=12111, help="port of the day's fake Stripe API (gateway's stripe.api_base)"
    )
    lg.add_argument("--stripe-host", default="127.0.0.1", help="address the fake Stripe API listens on")
    lg.add_argument("--config", dest="sub_config", help="TOML settings file")
    lg.set_defaults(func=cmd_loadgen)

    gw = sub.add_parser("gateway", help="serve Shopify, Stripe, Klaviyo, Braze and GA4 webhooks into Kafka")
    gw.add_argument("--config", dest="sub_config", help="TOML settings file")
    gw.set_defaults(func=cmd_gateway)

    dv = sub.add_parser("deliver", help="deliver approved/retracted triggers and stock to a vendor's API")
    dv.add_argument("system", choices=["klaviyo", "braze", "shoppingfeed"], help="the vendor")
    dv.add_argument("--port", type=int, help="port of /metrics, /healthz, /readyz (default delivery.port)")
    dv.add_argument("--config", dest="sub_config", help="TOML settings file")
    dv.set_defaults(func=cmd_deliver)

    pl = sub.add_parser("poll", help="read a marketplace's new orders into shop.orders")
    pl.add_argument("system", choices=["shoppingfeed"], help="the marketplace integrator")
    pl.add_argument("--port", type=int, help="port of /metrics, /healthz (default 9103)")
    pl.add_argument("--once", action="store_true", help="poll once and exit (1 when the poll failed)")
    pl.add_argument("--config", dest="sub_config", help="TOML settings file")
    pl.set_defaults(func=cmd_poll)

    fv = sub.add_parser("fake-vendors", help="serve local fakes of Klaviyo, Braze and Shoppingfeed for tests and demos")
    fv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    fv.add_argument("--port", type=int, default=9300, help="port (default 9300)")
    fv.add_argument("--delay-ms", type=float, default=0.0, help="service time added to every answer")
    fv.add_argument("--config", dest="sub_config", help="TOML settings file")
    fv.set_defaults(func=cmd_fake_vendors)

    im = sub.add_parser("import", help="turn a recorded GA4 BigQuery export into a replay file")
    im.add_argument("system", choices=["ga4"], help="whose export: ga4 (bq extract, NEWLINE_DELIMITED_JSON)")
    im.add_argument("inputs", nargs="+", help="export files (JSON lines, .gz too), in any order")
    im.add_argument("--out", required=True, help="the replay file to write, sorted by event time")
    im.add_argument("--rejects", help="rows that cannot be mapped, with reasons (default OUT.rejects.jsonl)")
    im.add_argument("--config", dest="sub_config", help="TOML settings file")
    im.set_defaults(func=cmd_import)

    c = sub.add_parser("config", help="show the effective settings and their env vars")
    c.add_argument("--config", dest="sub_config", help="TOML settings file")
    c.set_defaults(func=cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    # Flow state is millions of long-lived objects: default GC thresholds would rescan
    # them over and over (measured: a tenth of replay time). Collect far less often.
    gc.set_threshold(100_000, 50, 100)
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "sub_config", None) or args.config)
    except SettingsError as exc:
        print(f"stockguard: {exc}", file=sys.stderr)
        return 2
    rc: int = args.func(args, settings)
    return rc


if __name__ == "__main__":
    sys.exit(main())
