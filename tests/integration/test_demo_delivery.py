"""The demo's day, run live, through the deliverers to fake Klaviyo and Braze, with a 60 s outage.

The live job decides the simulator's day on the real broker; `stockguard deliver klaviyo`
and `stockguard deliver braze` take its decisions and stock views to the fakes, which go
down (503) for 60 s while deliveries are under way. At the end, what the fakes hold is
compared with what the job decided: every approved trigger once, nothing for a trigger
that was only suppressed, every retraction after its approval, and each sku's newest
stock in both catalogs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from tests.conftest import Services
from tests.integration.test_deliver import LOGS, ROOT, FakeServer, start, wait
from tests.integration.test_live import STOCKGUARD, OutputReader, isolated, stop_flows

pytestmark = pytest.mark.integration


def settled(reader: OutputReader, quiet_s: float = 6.0, timeout: float = 180.0) -> list[tuple[str, dict[str, Any]]]:
    """Wait until the job has written nothing new for `quiet_s`."""
    deadline = time.monotonic() + timeout
    n, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        recs = reader.snapshot()
        if len(recs) != n:
            n, since = len(recs), time.monotonic()
        elif n > 0 and time.monotonic() - since > quiet_s:
            return recs
        time.sleep(0.5)
    raise AssertionError(f"the job never settled ({n} records)")


def test_the_demo_day_live_reaches_the_fake_vendors_once_through_an_outage(services: Services) -> None:
    fake = FakeServer()
    base = f"http://127.0.0.1:{fake.port}"
    settings, env = isolated(
        services,
        STOCKGUARD_REDIS__PREFIX=f"demo-{uuid.uuid4().hex[:8]}",
        STOCKGUARD_KLAVIYO__API_BASE=base,
        STOCKGUARD_KLAVIYO__API_KEY="pk_test",
        STOCKGUARD_KLAVIYO__EVENTS_RATE="5000",
        STOCKGUARD_KLAVIYO__EVENTS_BURST="5000",
        STOCKGUARD_KLAVIYO__STOCK_INTERVAL="500ms",
        STOCKGUARD_BRAZE__API_BASE=base,
        STOCKGUARD_BRAZE__API_KEY="braze-test",
        STOCKGUARD_BRAZE__CAMPAIGNS='{"cm-cyber": "b-cyber", "cm-abandon": "b-abandon", "cm-lifecycle": "b-life"}',
        STOCKGUARD_BRAZE__STOCK_INTERVAL="500ms",
        STOCKGUARD_DELIVERY__BACKOFF_BASE="50ms",
        STOCKGUARD_DELIVERY__BACKOFF_CAP="2s",
        STOCKGUARD_DELIVERY__CIRCUIT_COOLDOWN="2s",
    )
    t = settings.topics
    reader = OutputReader(services.kafka, settings, extra=[t.stock_views])
    job_log = open(LOGS / f"deliver-{env['STOCKGUARD_REDIS__PREFIX']}-job.log", "ab")  # noqa: SIM115 - child's stdout
    job = subprocess.Popen(
        [*STOCKGUARD, "run"], env=env, cwd=ROOT, stdout=job_log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deliverers = [start("klaviyo", env), start("braze", env)]
    f = fake.fake
    try:
        load = subprocess.run(
            [sys.executable, "-m", "stockguard.cli", "loadgen", "--speed", "1e9"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert load.returncode == 0, load.stderr.decode()[-2000:]
        # The vendors go down while deliveries are under way, for a minute.
        wait(lambda: len(f.klaviyo_events) >= 500, 120)
        assert len(f.klaviyo_events) >= 500, "deliveries never started"
        f.down(60)
        down_at = len(f.klaviyo_events), len(f.braze_sends)
        recs = settled(reader)
        approved = {m["trigger_id"] for tp, m in recs if tp == t.approved}
        retracted = {m["trigger_id"] for tp, m in recs if tp == t.retracted}
        suppressed_only = {m["trigger_id"] for tp, m in recs if tp == t.suppressed} - approved
        views: dict[str, int] = {}
        for tp, m in recs:
            if tp == t.stock_views:
                views[m["sku"]] = m["atp"]
        assert len(approved) > 1000 and retracted and suppressed_only and views

        def klaviyo_ids(suffix: str) -> list[str]:
            return [e["properties"]["trigger_id"] for e in f.klaviyo_events if e["unique_id"].endswith(suffix)]

        wait(lambda: len(klaviyo_ids(":approved")) >= len(approved) and len(f.braze_sends) >= len(approved), 240)
        wait(lambda: len(klaviyo_ids(":retracted")) >= len(retracted) and len(f.braze_events) >= len(retracted), 60)
        wait(lambda: f.klaviyo_stock == views and f.braze_stock == views, 60)
    finally:
        for p in deliverers:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
            p.wait(30)
        stop_flows([job])
        job_log.close()
        reader.close()
        fake.stop()
    assert down_at[0] < len(approved), "the outage came after every delivery: it tested nothing"
    assert f.requests["/api/events"] > len(approved), "no request was refused during the outage"
    # Every approved trigger once to each vendor; nothing for one that was only suppressed.
    k_approved = klaviyo_ids(":approved")
    assert sorted(k_approved) == sorted(approved)
    braze = [r["trigger_properties"]["trigger_id"] for r in f.braze_sends]
    assert sorted(braze) == sorted(approved), "Braze got a trigger twice, or missed one"
    assert not suppressed_only & (set(k_approved) | set(braze))
    # Every retraction after its approval.
    order = {e["unique_id"]: i for i, e in enumerate(f.klaviyo_events)}
    for tid in retracted:
        assert order[f"{tid}:retracted"] > order[f"{tid}:approved"], tid
    assert {e["properties"]["trigger_id"] for e in f.braze_events} == retracted
    # The newest stock of every sku in both catalogs; no request refused as malformed.
    assert f.klaviyo_stock == views and f.braze_stock == views
    assert f.refused == []
