"""The demo's report in a real browser: every chart drew, no console error, the right figures."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from stockguard.cli import main
from stockguard.config.settings import load_settings
from stockguard.demo import run_demo

CHARTS = {"decisions", "stock-blind", "pushed", "retargets", "campaigns", "surges", "merchandising"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Tables(HTMLParser):
    """Collect each data-table's rows of cell texts, and each data-chart's svg count."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs: dict[str, int] = {}
        self._table: str | None = None
        self._chart: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        table, chart = a.get("data-table"), a.get("data-chart")
        if tag == "table" and table:
            self._table = table
            self.tables[table] = []
        elif tag == "div" and chart:
            self._chart = chart
            self.svgs[chart] = 0
        elif tag == "svg" and self._chart is not None and "main-svg" in (a.get("class") or ""):
            self.svgs[self._chart] += 1
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def num(text: str) -> float:
    return float(re.sub(r"[^\d.\-]", "", text.split(" ")[0]) or 0)


def messages(out: Path, topic: str) -> list[dict[str, object]]:
    f = out / f"{topic}.jsonl"
    return [orjson.loads(x) for x in f.read_bytes().splitlines()] if f.exists() else []


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert run_demo(load_settings(env={}), seed=42, speed=1e6, out_dir=out, stream=io.StringIO()) == 0
    return out


def test_the_demo_writes_its_report_and_the_cli_writes_it_again_elsewhere(demo: Path, tmp_path: Path) -> None:
    assert (demo / "report.html").stat().st_size > 1_000_000  # plotly.js is embedded: no network
    page = tmp_path / "again.html"
    assert main(["report", str(demo), "--input", str(demo / "input.replay"), "--html", str(page)]) == 0
    text = page.read_text()
    assert "cdn" not in text.lower().split("<script>")[0]
    assert all(f'data-chart="{c}"' in text for c in CHARTS)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_in_chromium_every_chart_draws_without_console_errors_and_shows_the_outputs_figures(demo: Path) -> None:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
            (demo / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "error" in line.lower() or "uncaught" in line.lower()], console
    dom = Tables()
    dom.feed(proc.stdout)
    # Every chart drew: plotly put its SVG layers in each chart's div.
    assert set(dom.svgs) == CHARTS
    assert all(n > 0 for n in dom.svgs.values()), dom.svgs

    t = load_settings(env={}).topics
    approved = messages(demo, t.approved)
    suppressed = messages(demo, t.suppressed)
    retracted = messages(demo, t.retracted)
    # Decisions per hour: the totals add up to every decision and retraction written.
    rows = dom.tables["decisions"][1:]
    assert sum(num(r[-1]) for r in rows) == len(approved) + len(suppressed) + len(retracted)
    head = dom.tables["decisions"][0]
    assert sum(num(r[head.index("sent")]) for r in rows) == sum(1 for m in approved if m["decision"] == "send")
    # Against a stock-blind sender, counted here from the files.
    oos = [m for m in suppressed if m["reason"] in ("out_of_stock", "stock_budget_exhausted")]
    gone = {m["trigger_id"] for m in retracted}
    ret = [m for m in approved if m["decision"] == "retarget" and m["trigger_id"] not in gone]
    (sb,) = dom.tables["stock-blind"][1:]
    assert num(sb[0]) == len(oos) + len(ret) + len(gone)
    # Drains: one row per drain message written, before its stock-out.
    drains = [a for a in messages(demo, t.surge_alerts) if a["kind"] == "stock_drain"]
    assert len(dom.tables["drains"]) - 1 == len(drains)
    assert all(num(r[4]) > 0 for r in dom.tables["drains"][1:] if r[2] == "open")
    # Campaigns: the orders of the day, attributed, as the demo's own summary counts them.
    camp = {r[0].split(" ")[0]: r for r in dom.tables["campaigns"][1:]}
    assert num(camp["cm-cyber"][1]) > 0 and num(camp["cm-cyber"][3]) > 0


def test_an_output_file_cut_short_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "marketing.triggers.approved.jsonl").write_bytes(b'{"trigger_id": "t1"}\n{"trigger_id": "t')
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "line 2 is not JSON" in err and "cut short" in err
    assert not (tmp_path / "report.html").exists()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
