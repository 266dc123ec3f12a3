"""dd report: one self-contained HTML page per sweep, rendered in a real headless Chromium.

Chromium is Debian's package, installed by ``make browser`` (which ``make test`` and CI run);
without it the browser test skips and says so, except under CI (``CI`` set), where it fails.
The screenshot is kept in test-artefacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from dd.analysis.aggregate import describe, write_curves
from dd.analysis.report import _failures, write_report
from dd.plan.sweep import parse_spec
from dd.run.execute import run_sweep
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN

ARTEFACTS = Path(__file__).parents[2] / "test-artefacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0);
  document.body.setAttribute("data-images", images.length + "/" + loaded.length);
});
</script></body>"""


OFFLINE = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]  # no network


def _markup(page: str) -> str:
    """The page less its inline scripts (plotly.js's own source names URLs it never loads)."""
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        missing = "Debian's chromium is not installed: run 'make browser' (as root) first"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return path


def _chromium(binary: str, tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def report(ray_local, tmp_path_factory):
    spec = parse_spec({**TINY_GAUSSIAN, "name": "report"})
    store = SweepStore(tmp_path_factory.mktemp("report"), spec.name)
    run_sweep(spec, store.root, quiet=True)
    store.write_failure("p-lost", ["t-lost-1", "t-lost-2"], "WorkerCrashedError: node died")
    return spec, store, write_report(store)[0]


@pytest.mark.browser
def test_the_report_renders_in_chromium_with_every_figure_and_the_key_numbers(
    report, chromium, tmp_path
):
    spec, store, path = report
    page = path.read_text()
    assert not re.search(r'(src|href)="(?!data:)', _markup(page)), "everything inline"
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", IMAGE_CHECK))
    dom = _chromium(chromium, tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    shown, loaded = re.search(r'data-images="(\d+)/(\d+)"', dom).groups()
    figures = write_curves(store, spec).figures
    assert int(shown) == len(figures) >= 2 and loaded == shown, "every figure decoded"
    for line in describe(write_curves(store, spec)):
        assert line in dom, line  # thresholds and peaks, as the terminal prints them
    assert re.search(rf'data-fact="trials planned">{len(spec.trials)}<', dom)
    assert re.search(rf'data-fact="done">{len(spec.trials)}<', dom)
    assert "WorkerCrashedError: node died" in dom and "p-lost" in dom
    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / "report.png"
    shot.unlink(missing_ok=True)
    _chromium(chromium, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", path.as_uri())
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_report_command_writes_where_asked(report, tmp_path):
    from dd.cli import main

    _, store, _ = report
    out = tmp_path / "page.html"
    assert main(["report", store.name, "--results", str(store.root), "--output", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob(".tmp-*"))


def test_diverged_trials_are_listed_with_their_step(report):
    _, store, _ = report
    rows = pa.table(
        {
            "trial_id": ["a", "a", "b"],
            "status": ["diverged", "diverged", "ok"],
            "diverged_step": [17, 17, None],
            "pack_id": ["p", "p", "p"],
        }
    )
    section = _failures(store, rows)
    assert '<td class="text">a</td><td>17</td>' in section
    assert ">b<" not in section


@pytest.mark.browser
def test_a_running_sweeps_report_reloads_itself_and_says_so_until_it_ends(
    report, chromium, tmp_path
):
    """dd report --watch: while a pack runs, the page says the curves are provisional and
    reloads itself; once nothing runs, the rewritten page does neither (both loads read in
    headless Chromium)."""
    spec, store, _ = report
    with store.running("p-live", trials=4, widths=[2, 8]) as update:
        update(epoch=3, epochs=10, test_error=0.5, train_error=0.1, epochs_per_s=1.0, eta_s=7)
        live, running = write_report(store, str(tmp_path / "live.html"), spec, reload_s=5)
        assert running
        during = _chromium(chromium, tmp_path, "--dump-dom", live.as_uri())
    done, running = write_report(store, str(tmp_path / "done.html"), spec, reload_s=5)
    assert not running
    after = _chromium(chromium, tmp_path, "--dump-dom", done.as_uri())
    assert '<meta http-equiv="refresh" content="5">' in during
    assert (
        "running: 1 pack (4 trials, widths 2-8) at epoch 3 of 10; curves are provisional" in during
    )
    assert 'http-equiv="refresh"' not in after and "running:" not in after


GROK_TINY = {  # fabricated rows (``_grok_rows``): nothing is trained
    "name": "grok_lead",
    "data": {"name": "modular", "p": 11, "train_fraction": 0.5},
    "model": {"name": "transformer", "width": 16, "heads": 2, "d_mlp": 32},
    "train": {"optimizer": "adamw", "batch_size": "full", "epochs": 1000, "eval_points": 5},
    "grid": {"train.weight_decay": [0.0, 1.0], "seed": {"range": [0, 3]}},
}
GROK_STEPS = (10, 30, 100, 300, 1000)


def _grok_rows(trial) -> list[dict]:
    """With weight decay: memorise by step 30, generalise at step 300 (seed 0) or 1000;
    without: memorise only. Epoch-wise, the test error of every trial peaks at step 100 and
    falls again: a significant epoch-wise double descent, the line that led the page before."""
    groks = trial.train.weight_decay > 0
    t_gen = 300 if trial.seed == 0 else 1000
    rows = []
    for step in GROK_STEPS:
        train_acc = 0.5 if step < 30 else 1.0
        test_acc = 1.0 if groks and step >= t_gen else (0.05 if step == 100 else 0.1)
        rows.append(
            {
                "step": step,
                "epoch": step,
                "train_error": 1 - train_acc,
                "test_error": 1 - test_acc,
                "train_loss": 1 - train_acc,
                "test_loss": 1 - test_acc,
            }
        )
    return rows


@pytest.fixture
def grok_store(tmp_path):
    from helpers import store_trials

    store_trials(tmp_path, GROK_TINY, rows=_grok_rows)
    return SweepStore(tmp_path, GROK_TINY["name"])


def _order(page: str, *needles: str) -> list[int]:
    at = [page.find(n) for n in needles]
    assert all(i >= 0 for i in at), dict(zip(needles, at, strict=True))
    return at


@pytest.mark.slow
def test_a_grokking_sweeps_report_opens_with_the_grokking_verdict_and_times(grok_store):
    """The finding a grokking sweep is for (how many trials generalise, when) comes first,
    above the epoch-wise line and the trial counts; the times table moves up with it."""
    path, running = write_report(grok_store)
    page = path.read_text()
    assert not running
    verdict = "grokking: 3 of 6 trials generalise within the budget"
    assert (
        verdict + " (median T_memorise 30 in (10, 30], T_generalise 1000 in (300, 1000] steps, "
        "between the evaluations that bracket them)" in page
    )
    first_h2 = page.find("<h2>")
    finding, times, epoch_wise, trials = _order(
        page, verdict, "t_generalise", "epoch-wise double descent", "<h2>Trials</h2>"
    )
    assert page.find("<h2>", first_h2 + 1) > finding, "the first section holds the verdict"
    assert first_h2 < finding < times < epoch_wise < trials
    assert page.count(">Grokking times and phases<") == 1, "the times table moved, not copied"


@pytest.mark.slow
def test_while_packs_run_the_live_state_and_its_eta_follow_the_finding(grok_store, tmp_path):
    with grok_store.running("p-live", trials=2, widths=[16]) as update:
        update(epoch=300, epochs=1000, test_error=0.5, train_error=0.0, eta_s=65)
        path, running = write_report(grok_store, str(tmp_path / "live.html"), reload_s=5)
    assert running
    page = path.read_text()
    finding, live, eta, trials = _order(
        page, '<section id="finding">', "curves are provisional", "ETA 0h01m05s", "<h2>Trials</h2>"
    )
    assert finding < live < eta < trials


DRIVE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const say = (k, v) => document.body.setAttribute("data-" + k, String(v));
  const gd = document.getElementById("curves-grokking");
  say("plotly", typeof Plotly !== "undefined" && !!gd.querySelector(".main-svg"));
  const lines = gd._fullData.filter(t => t.mode === "lines+markers");
  say("lines", lines.length);
  const t = lines[lines.length - 1], i = 3;  // the last series at step 300
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const drag = gd.querySelector(".nsewdrag"), box = drag.getBoundingClientRect();
  const at = {clientX: box.left + xa.c2p(t.x[i]), clientY: box.top + ya.c2p(t.y[i]),
              bubbles: true, view: window};
  drag.dispatchEvent(new MouseEvent("mousemove", at));
  setTimeout(() => {
    say("tooltip", gd.querySelector(".hoverlayer").textContent);
    const drawn = () => gd.querySelectorAll(".scatterlayer .trace").length;
    say("drawn-before", drawn());
    const toggle = gd.querySelectorAll(".legendtoggle")[0];
    const box2 = toggle.getBoundingClientRect();
    const click = {clientX: box2.left + 5, clientY: box2.top + 5, bubbles: true, view: window,
                   button: 0, buttons: 1};
    toggle.dispatchEvent(new MouseEvent("mousedown", click));
    toggle.dispatchEvent(new MouseEvent("mouseup", {...click, buttons: 0}));
    setTimeout(() => {
      say("hidden", gd._fullData.filter(d => d.visible === "legendonly").map(d => d.name));
      say("drawn-after", drawn());
      say("done", 1);
    }, 1500);
  }, 500);
}, 200));
</script></body>"""


@pytest.mark.browser
def test_the_report_is_interactive_offline_a_hover_shows_the_seeds_and_a_click_hides(
    grok_store, chromium, tmp_path
):
    """The grokking curves, drawn by the inlined plotly.js with every request refused:
    hovering a point shows its mean, interval and each seed's value; clicking a legend entry
    hides that series (its line and band)."""
    path, _ = write_report(grok_store)
    page = path.read_text()
    assert not re.search(r'(src|href)="(?!data:)', _markup(page)), "nothing to fetch"
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", DRIVE))
    dom = _chromium(
        chromium, tmp_path, *OFFLINE, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()
    )
    facts = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', dom))
    assert facts.get("done") == "1", facts
    assert facts["plotly"] == "true" and facts["lines"] == "4"  # 2 decays x 2 accuracies
    tooltip = facts["tooltip"]
    assert "train_weight_decay=1.0" in tooltip and "step=300" in tooltip, tooltip
    assert "test_accuracy mean 0.4000" in tooltip and "over 3 seeds" in tooltip, tooltip
    assert all(f"seed {s}: {v}" in tooltip for s, v in ((0, "1"), (1, "0.1"), (2, "0.1")))
    hidden = "train_weight_decay=0.0: train_accuracy"
    assert facts["hidden"] == f"{hidden} 95% band,{hidden}", facts["hidden"]
    assert int(facts["drawn-after"]) == int(facts["drawn-before"]) - 2, facts


def _partial(tmp_path) -> SweepStore:
    """GROK_TINY's rows as a running pack's rows so far (``partial``), no pack finished."""
    from dd.spec.ids import trial_id
    from dd.store.schema import pack_table

    spec = parse_spec(GROK_TINY)
    store = SweepStore(tmp_path, spec.name)
    store.write_spec(spec.mapping)
    trials = list(spec.trials)
    table = pack_table(
        sweep=spec.name,
        pack_id="p-run",
        trial_ids=[trial_id(t) for t in trials],
        trials=trials,
        rows=[_grok_rows(t) for t in trials],
        wall_time_s=0.0,
        jax_version="none",
        partial=True,
    )
    store.write_partial("p-run", table)
    return store


@pytest.mark.slow
def test_a_running_sweep_with_no_finished_pack_gets_a_provisional_report(tmp_path):
    """Issue 32 item 7: no pack finished yet, one runs with rows so far: the page is written,
    with the pack's progress and the curves and finding marked provisional."""
    store = _partial(tmp_path)
    assert store.stored_trial_ids() == set()
    with store.running("p-run", trials=6, widths=[16]) as update:
        update(epoch=300, epochs=1000, test_error=0.4, train_error=0.0, epochs_per_s=9.0, eta_s=80)
        path, running = write_report(store)
    page = _markup(path.read_text())
    assert running
    assert "curves are provisional" in page
    assert "pack p-run: 6 trials" in page and "epoch 300/1000" in page
    assert "Finding (provisional: packs still run)" in page, page[:3000]


def test_a_sweep_whose_only_pack_failed_gets_a_report_with_the_reason(tmp_path):
    """Issue 32 item 7: the one pack failed (its rows so far are stale): the page says so with
    the reason, and draws no finding, curve or verdict from the stale rows."""
    store = _partial(tmp_path)
    ids = sorted({r for r in store._read(store.partial_path("p-run"))["trial_id"].to_pylist()})
    store.write_failure("p-run", ids, "RuntimeError: injected failure of pack p-run at epoch 1")
    path, running = write_report(store)
    page = _markup(path.read_text())
    assert not running
    assert "injected failure of pack p-run at epoch 1" in page
    assert "No results stored yet" in page and "every pack failed" in page, page[:3000]
    assert "Finding" not in page and "Verdict" not in page and "curves-" not in page
    assert 'data-fact="failed">6<' in page and 'data-fact="stale' in page


def test_a_running_sweep_before_its_first_evaluation_point_gets_a_report(tmp_path, capsys):
    """Issue 32 item 7: a pack runs, no row yet: ``dd report`` writes the page (it refused,
    'no results stored yet'), saying the pack runs; the page reloads itself."""
    from dd.cli import main

    spec = parse_spec(GROK_TINY)
    store = SweepStore(tmp_path, spec.name)
    store.write_spec(spec.mapping)
    with store.running("p-run", trials=6, widths=[16]):
        assert main(["report", spec.name, "--results", str(tmp_path)]) == 0
    assert "packs running" in capsys.readouterr().out
    page = _markup(store.report_path.read_text())
    assert "running: 1 pack (6 trials), no evaluation point reached yet" in page
    assert "No results stored yet" in page and "Finding" not in page
