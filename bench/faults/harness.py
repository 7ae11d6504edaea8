"""Run the live job (real Kafka, Redis) through faults and build the ledger of each run.

Every scenario produces a simulated day interleaved across topics in production order, at
a steady rate, to topics of its own; the oracle is the same messages replayed through
`build_flow` in that order.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.faults.ledger import Ledger, Record, build_ledger
from stockguard.config.settings import Settings, load_settings, topic_env
from stockguard.flows.dataflow import build_flow
from stockguard.flows.records import OutRecord, RawRecord
from stockguard.live import create_topics
from stockguard.sim import SimConfig, simulate

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"
Message = tuple[str, str | None, bytes]


def log(msg: str) -> None:
    """Print a progress line to stderr."""
    print(f"faults: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def day(
    hours: float = 3.0, seed: int = 7, events_per_hour: int = 3000, skus: int = 60, customers: int = 400
) -> list[Message]:
    """Simulate a day, interleaved across topics as produced (unique trigger ids)."""
    cfg = SimConfig(
        seed=seed,
        hours=hours,
        skus=skus,
        customers=customers,
        events_per_hour=events_per_hour,
        campaign_start_h=hours / 3,
        campaign_hours=hours / 3,
    )
    out: list[Message] = []
    seen: set[str] = set()
    for topic, key, value in simulate(cfg):
        if isinstance(value, dict):
            if topic == "marketing.triggers":
                tid = value.get("trigger_id")
                if tid in seen:
                    continue  # ids identify decisions in the ledger
                if isinstance(tid, str):
                    seen.add(tid)
            if topic == "shop.orders" and isinstance(value.get("lines"), list):
                # An unlocated line is charged at the best location, which depends on the
                # order across order partitions: pin it, so the oracle is well defined.
                for line in value["lines"]:
                    if isinstance(line, dict) and "location" not in line:
                        line["location"] = "WH-PARIS"
            data = orjson.dumps(value)
        else:
            data = str(value).encode()
        out.append((topic, key, data))
    return out


@dataclass
class Run:
    """One scenario's outcome."""

    name: str
    ledger: Ledger | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """Return the scenario's figure line."""
        parts = [f"{k} {v}" for k, v in self.figures.items()]
        head = f"{self.name}: {'OK' if self.ok else 'FAILED'}"
        body = "; ".join(([self.ledger.format()] if self.ledger else []) + parts + self.problems)
        return f"{head}: {body}"


class Env:
    """Settings and environment of a run with its own topics, ports and recovery store."""

    def __init__(self, kafka: str, redis: str, tmp: Path, **extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
        env.update(topic_env(f"f-{uuid.uuid4().hex[:8]}."))
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "REDIS_URL": redis,
            "STOCKGUARD_KAFKA__PARTITIONS": "2",
            "STOCKGUARD_EPOCH_INTERVAL": "1s",
            "STOCKGUARD_SNAPSHOT_INTERVAL": "1s",
            "STOCKGUARD_METRICS_PORT": str(free_port()),
            "STOCKGUARD_HEALTH_PORT": str(free_port()),
            "STOCKGUARD_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
        env |= extra
        self.env = env
        self.kafka = kafka
        self.settings = load_settings(env=env)
        self.recovery = tmp / f"recovery-{uuid.uuid4().hex[:6]}"
        self.logs = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def create_topics(self) -> None:
        """Create this run's topics."""
        for topic, outcome in create_topics(self.settings):
            if outcome.startswith("failed"):
                raise RuntimeError(f"{topic}: {outcome}")

    def renamed(self, msgs: list[Message]) -> list[Message]:
        """Map contract topic names to this run's."""
        names = self.settings.topics.from_contract()
        return [(names.get(t, t), k, v) for t, k, v in msgs]

    def start(self) -> subprocess.Popen[bytes]:
        """Start `stockguard run -r` on this run's recovery store."""
        n = len(self.procs)
        out = open(self.logs / f"flow-{self.recovery.name}-{n}.log", "wb")  # noqa: SIM115 - child's stdout
        p = subprocess.Popen(
            [sys.executable, "-m", "stockguard.cli", "run", "-r", str(self.recovery)],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def log_tail(self, n: int = -1, lines: int = 15) -> str:
        """Return the end of a process's log."""
        path = self.logs / f"flow-{self.recovery.name}-{n % max(1, len(self.procs))}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def ready(self) -> int | None:
        """Return the HTTP status of /readyz of the current process (None: no answer)."""
        port = self.env["STOCKGUARD_HEALTH_PORT"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:  # noqa: S310
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def journal_read(self) -> int:
        """Sum the decisions read back from the journal over every restart (from the logs)."""
        total = 0
        for path in self.logs.glob(f"flow-{self.recovery.name}-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if '"decision journal read back"' in line:
                    try:
                        total += int(orjson.loads(line).get("decisions", 0))
                    except (orjson.JSONDecodeError, ValueError, TypeError):
                        continue
        return total

    def stop_all(self) -> None:
        """Kill what is still running."""
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


class Reader:
    """Read the decision, retraction and DLQ topics from the beginning, in the background."""

    def __init__(self, kafka: str, settings: Settings) -> None:
        t = settings.topics
        self.kinds = {t.approved: "approved", t.suppressed: "suppressed", t.retracted: "retracted", t.dlq: "dlq"}
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.consumer = Consumer({"bootstrap.servers": kafka, "group.id": "faults-unused", "enable.auto.commit": False})
        parts = []
        for topic in self.kinds:
            md = self.consumer.list_topics(topic, timeout=30)
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
        self.consumer.assign(parts)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self.consumer.consume(1000, 0.2):
                topic, value = m.topic(), m.value()
                if m.error() is None and topic is not None and value is not None:
                    with self.lock:
                        self.records.append((self.kinds[topic], orjson.loads(value)))
        self.consumer.close()

    def snapshot(self) -> list[Record]:
        """Return what was read so far."""
        with self.lock:
            return list(self.records)

    def close(self) -> None:
        """Stop reading."""
        self._stop.set()
        self.thread.join(5)


class Feeder:
    """Produce messages in order at a steady rate from a background thread."""

    def __init__(
        self, kafka: str, msgs: list[Message], rate: float, producer_conf: dict[str, Any] | None = None
    ) -> None:
        conf: dict[str, Any] = {"bootstrap.servers": kafka, "linger.ms": 2, "enable.idempotence": True}
        conf.update(producer_conf or {})
        self.producer = Producer(conf)
        self.msgs = msgs
        self.rate = rate
        self.positions: dict[int, tuple[str, int, int]] = {}
        self.done = threading.Event()
        # Set while the upstream holds back (a gateway answering 503 during an outage).
        self.hold = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feeder:
        """Start producing."""
        self.thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        for i, (topic, key, value) in enumerate(self.msgs):
            if self.hold.is_set():
                held = time.monotonic()
                self.producer.flush(600)
                while self.hold.is_set():
                    time.sleep(0.05)
                start += time.monotonic() - held
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

            def cb(err: Any, m: Any, i: int = i) -> None:
                if err is None:
                    self.positions[i] = (m.topic(), m.partition(), m.offset())

            while True:
                try:
                    self.producer.produce(topic, value, key, on_delivery=cb)
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)
        left = self.producer.flush(600)
        if left:
            log(f"{left} input messages not acknowledged")
        self.done.set()


def replay(settings: Settings, msgs: list[Message]) -> list[Record]:
    """Decide the messages with the broker-less flow in production order: the oracle."""
    out: list[OutRecord] = []
    recs = [RawRecord(t, k.encode() if k else None, v, 0, i) for i, (t, k, v) in enumerate(msgs)]
    run_main(build_flow(settings, {"replay": TestingSource(recs)}, {"out": TestingSink(out)}))  # type: ignore[no-untyped-call]
    t = settings.topics
    kinds = {t.approved: "approved", t.suppressed: "suppressed", t.retracted: "retracted"}
    return [(kinds[r.topic], orjson.loads(r.value)) for r in out if r.topic in kinds]


def trigger_ids(settings: Settings, msgs: list[Message]) -> list[str]:
    """Return the ids of the valid-looking triggers of a day."""
    ids = []
    for topic, _k, v in msgs:
        if topic == settings.topics.triggers:
            try:
                m = orjson.loads(v)
            except orjson.JSONDecodeError:
                continue
            if isinstance(m, dict) and isinstance(m.get("trigger_id"), str):
                ids.append(m["trigger_id"])
    return ids


def settle(
    reader: Reader,
    expected: int,
    timeout: float,
    quiet_s: float = 4.0,
    env: Env | None = None,
    problems: list[str] | None = None,
    stall_s: float = 180.0,
) -> list[Record]:
    """Wait until `expected` triggers are decided and no output arrived for `quiet_s`.

    With `env`, a job that exited meanwhile, or that wrote nothing for `stall_s` seconds
    while decisions are missing, ends the wait early with the reason and the job's log
    tail in `problems`, so a failed run says why instead of running into a test timeout.
    """
    deadline = time.monotonic() + timeout
    last_n = -1
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        recs = reader.snapshot()
        decided = {m.get("trigger_id") for k, m in recs if k in ("approved", "suppressed")}
        now = time.monotonic()
        if len(recs) != last_n:
            last_n, last_change = len(recs), now
        if len(decided) >= expected and now - last_change >= quiet_s:
            return recs
        if env is not None and problems is not None:
            p = env.procs[-1]
            if p.poll() is not None:
                problems.append(
                    f"the job exited rc {p.returncode} with {len(decided)}/{expected} decided: {env.log_tail()}"
                )
                return recs
            if now - last_change >= stall_s:
                problems.append(
                    f"no output for {stall_s:.0f} s with {len(decided)}/{expected} decided, "
                    f"/readyz {env.ready()}: {env.log_tail(lines=30)}"
                )
                return recs
        time.sleep(0.25)
    if problems is not None:
        problems.append(f"not settled within {timeout:.0f} s")
    return reader.snapshot()


class Scenario:
    """A day through the live job with a fault schedule, then its ledger."""

    def __init__(self, kafka: str, redis: str, tmp: Path, msgs: list[Message], rate: float, **extra: str) -> None:
        self.e = Env(kafka, redis, tmp, **extra)
        self.e.create_topics()
        self.msgs = self.e.renamed(msgs)
        self.rate = rate
        settings = self.e.settings.with_workers(1)
        log(f"replaying {len(self.msgs):,} messages for the oracle")
        self.expected = replay(settings, self.msgs)
        self.ids = trigger_ids(settings, self.msgs)
        decided = {m["trigger_id"] for k, m in self.expected if k != "retracted"}
        self.n_decided = len(decided)

    def run(self, name: str, fault: Callable[[Env, Feeder], dict[str, Any]], timeout: float = 600) -> Run:
        """Start the job, feed the day while `fault` acts, settle, and build the ledger."""
        e = self.e
        e.start()
        reader = Reader(e.kafka, e.settings)
        feeder = Feeder(e.kafka, self.msgs, self.rate).start()
        result = Run(name)
        try:
            result.figures = fault(e, feeder)
            feeder.thread.join(timeout)
            if e.procs[-1].poll() is not None:
                result.problems.append(f"the job exited rc {e.procs[-1].returncode}: {e.log_tail()}")
                e.start()
            recs = settle(reader, self.n_decided, timeout, env=e, problems=result.problems)
            result.ledger = build_ledger(self.ids, self.expected, recs)
            result.figures.setdefault("dlq", sum(1 for k, _m in recs if k == "dlq"))
            result.figures["decisions read back from the journal"] = e.journal_read()
        finally:
            reader.close()
            e.stop_all()
        result.ok = result.ledger is not None and result.ledger.ok and not result.problems
        return result


def kill9_storm(sc: Scenario, kills: int, seed: int = 1) -> Run:
    """Kill -9 the job `kills` times while the day is fed, restarting it each time."""
    rng = random.Random(seed)
    duration = len(sc.msgs) / sc.rate

    def fault(e: Env, feeder: Feeder) -> dict[str, Any]:
        gap = max(2.5, duration / (kills + 1))
        for _ in range(kills):
            time.sleep(rng.uniform(0.6 * gap, 1.4 * gap))
            p = e.procs[-1]
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
            e.start()
        return {"kill -9": kills}

    return sc.run(f"kill -9 x{kills}", fault)


def sigterm_cycles(sc: Scenario, stops: int, seed: int = 2) -> Run:
    """SIGTERM the job `stops` times while the day is fed; each stop must exit 0 quickly."""
    rng = random.Random(seed)
    duration = len(sc.msgs) / sc.rate
    codes: list[int] = []
    seconds: list[float] = []

    def fault(e: Env, feeder: Feeder) -> dict[str, Any]:
        gap = max(3.0, duration / (stops + 1))
        for _ in range(stops):
            time.sleep(rng.uniform(0.6 * gap, 1.4 * gap))
            p = e.procs[-1]
            t0 = time.monotonic()
            os.killpg(p.pid, signal.SIGTERM)
            try:
                codes.append(p.wait(60))
            except subprocess.TimeoutExpired:
                codes.append(-999)
            seconds.append(time.monotonic() - t0)
            e.start()
        return {"rc": codes, "stop seconds max": round(max(seconds, default=0.0), 2)}

    run = sc.run(f"SIGTERM x{stops}", fault)
    if any(c != 0 for c in codes):
        run.ok = False
        run.problems.append(f"a graceful stop exited non-zero: {codes}")
    if run.ledger is not None:
        resent = run.ledger.identical_duplicates + len(run.ledger.conflicting_duplicates)
        run.figures["re-sent"] = resent
        if resent:
            run.ok = False
    return run


class PrivateService:
    """A broker or redis of our own (services.sh with other ports and run dir)."""

    def __init__(self, what: str, tmp: Path) -> None:
        self.what = what
        self.env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
        self.env |= {
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "REDIS_PORT": str(free_port()),
            "STOCKGUARD_RUN_DIR": str(tmp / f"svc-{what}-{uuid.uuid4().hex[:6]}"),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        }
        self.address = self._cmd("start")

    def _cmd(self, verb: str) -> str:
        out = subprocess.run(
            ["bash", str(SERVICES), f"{verb}-{self.what}"],  # noqa: S607 - bash from PATH, as CI runs it
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        lines = out.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def stop(self) -> None:
        """Stop the service (its data stays)."""
        self._cmd("stop")

    def start(self) -> None:
        """Start it again on the same ports and data."""
        self._cmd("start")


def outage(sc: Scenario, service: PrivateService, seconds: float, name: str, hold_input: bool = False) -> Run:
    """Stop a service mid-day for `seconds`, start it again; the job must not exit.

    `hold_input`: the upstream stops producing during the outage and goes on in order
    after it (a gateway answering 503, its senders retrying), instead of buffering and
    delivering its partitions' backlogs in whatever order the producer flushes them.
    """
    seen: list[tuple[float, int | None]] = []

    def fault(e: Env, feeder: Feeder) -> dict[str, Any]:
        time.sleep(max(4.0, len(sc.msgs) / sc.rate / 3))
        if hold_input:
            feeder.hold.set()
        t0 = time.monotonic()
        service.stop()
        while time.monotonic() - t0 < seconds:
            seen.append((time.monotonic() - t0, e.ready()))
            if e.procs[-1].poll() is not None:
                break
            time.sleep(1.0)
        exited = e.procs[-1].poll()
        service.start()
        feeder.hold.clear()
        t1 = time.monotonic()
        back = None
        while time.monotonic() - t1 < 60:
            if e.ready() == 200:
                back = round(time.monotonic() - t1, 1)
                break
            time.sleep(0.5)
        statuses = sorted({s for _t, s in seen if s is not None})
        return {
            "outage s": seconds,
            "job exited during outage": exited is not None,
            "/readyz during outage": statuses,
            "ready again after s": back,
        }

    run = sc.run(name, fault)
    led = run.ledger
    # Targets of an outage: no exit, nothing lost, no decision changed. Decisions made after
    # it can differ from the replay: the feeding producer buffered during the outage and
    # delivered its partitions' backlogs one after another, out of production order, and no
    # consumer can wait for older messages a partition does not show yet (see operations.md).
    run.ok = (
        not run.figures.get("job exited during outage")
        and led is not None
        and not led.lost
        and not led.conflicting_duplicates
        and (not hold_input or not led.missing_retractions)
        and not run.problems
    )
    return run


def poison_messages(settings: Settings) -> list[Message]:
    """Return poison for every input topic: the kinds that crashed or blocked flows."""
    t = settings.topics
    trig = {
        "trigger_id": "poison-deep",
        "ts": 1764547200000,
        "campaign_id": "cm",
        "customer_id": "c-poison",
        "kind": "promotion",
        "channel": "email",
        "skus": ["X"],
        "consent": True,
    }
    deep = orjson.dumps(trig)[:-1] + b',"extra":' + b'{"x":' * 300 + b"1" + b"}" * 300 + b"}"
    out: list[Message] = [(t.triggers, "c-poison", deep)]
    for topic in t.inputs():
        out += [
            (topic, "k", b"not json {"),
            (topic, "k", b"\xff\xfe\xfa invalid utf-8"),
            (topic, "k", b'{"ts": "yesterday", "sku": 7, "lines": {}}'),
            (topic, "k", b"[" * 2000 + b"]" * 2000),
            (topic, "k", b'{"pad": "' + b"x" * 2_000_000 + b'"}'),
            (topic, "k", orjson.dumps({"skus": list(range(100_000))})),
        ]
    out.append((t.orders, "k", b'{"pad": "' + b"y" * 5_000_000 + b'"}'))
    return out


def poison(kafka: str, redis: str, tmp: Path, msgs: list[Message], rate: float) -> Run:
    """Interleave poison with a normal day: every poison dead-lettered, the day unharmed."""
    sc = Scenario(kafka, redis, tmp, msgs, rate)
    e = sc.e
    # Let the broker take 10 MB messages on the input topics, as a careless producer might.
    from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": kafka})
    for topic in e.settings.topics.inputs():
        res = ConfigResource("topic", topic, set_config={"max.message.bytes": "10485760"})
        for fut in admin.alter_configs([res]).values():
            fut.result()
    bad = poison_messages(e.settings)
    step = max(1, len(sc.msgs) // (len(bad) + 1))
    mixed: list[Message] = []
    poison_index: set[int] = set()
    for i, m in enumerate(sc.msgs):
        mixed.append(m)
        if i % step == step - 1 and bad:
            poison_index.add(len(mixed))
            mixed.append(bad.pop())
    for m in bad:
        poison_index.add(len(mixed))
        mixed.append(m)
    sc.msgs = mixed

    def feed_with_big_messages(e: Env, feeder: Feeder) -> dict[str, Any]:
        return {"poison messages": len(poison_index)}

    # The feeder needs to be able to send 5 MB values.
    e.start()
    reader = Reader(e.kafka, e.settings)
    feeder = Feeder(kafka, mixed, rate, {"message.max.bytes": 10_485_760, "linger.ms": 2}).start()
    run = Run("poison")
    try:
        run.figures = feed_with_big_messages(e, feeder)
        feeder.thread.join(600)
        recs = settle(reader, sc.n_decided, 300, env=e, problems=run.problems)
        alive = e.procs[-1].poll() is None
        run.ledger = build_ledger(sc.ids, sc.expected, recs)
        dlq = {(m.get("topic"), m.get("partition"), m.get("offset")) for k, m in recs if k == "dlq"}
        missing = [i for i in poison_index if feeder.positions.get(i) not in dlq]
        run.figures |= {"dead-lettered": len(poison_index) - len(missing), "crashes": 0 if alive else 1}
        if not alive:
            run.problems.append(f"the job died: {e.log_tail()}")
        if missing:
            run.problems.append(f"{len(missing)} poison messages without a DLQ record")
    finally:
        reader.close()
        e.stop_all()
    run.ok = run.ledger.ok and not run.problems if run.ledger else False
    return run
