"""The monitor's timeline and log panels, a kernel that goes away, and a replayed run,
in a real JupyterLab."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .harness import (
    ARTIFACTS_DIR,
    JupyterLab,
    cell_output,
    open_notebook,
    run_all_cells,
    screenshot,
    write_notebook,
)
from .test_monitor import save_doc_image

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent


def setup_cell(state: Path) -> str:
    return (f"import os, sys\nos.environ['ORBITS_NB_STATE'] = {str(state)!r}\n"
            f"sys.path.insert(0, {str(TESTS)!r})\n"
            "import orbits_nb as ob\n"
            "from test_timeline_flows import FanOut\n"
            "from test_views_flows import DeployBackend")


def show_tab(output: Locator, name: str) -> None:
    output.locator(f'button.onb-tab[data-tab="{name}"]').click()


def bar_heights(output: Locator) -> list[float]:
    # JupyterLab hides cells scrolled out of view: measure the timeline on screen.
    output.locator(".onb-timeline").scroll_into_view_if_needed()
    return [float(h) for h in output.locator(".onb-tl-bar").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().height)")]


def picture(output: Locator, name: str) -> None:
    """A PNG of the monitor in ``output``, by its place on the page: the output is
    drawn again when the run settles, which would detach an element being shot."""
    monitor = output.locator(".onb-monitor")
    monitor.scroll_into_view_if_needed()
    box = monitor.bounding_box()
    assert box is not None
    page = output.page
    view = page.viewport_size or {"width": 1400, "height": 1000}
    top = max(0.0, box["y"])
    clip = {"x": max(0.0, box["x"]), "y": top, "width": min(box["width"], view["width"]),
            "height": min(box["height"], view["height"] - top)}
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / name), clip=clip)


def test_timeline_of_a_16_and_a_200_way_fanout_and_the_live_log_view(
        jupyter_lab: JupyterLab, browser_page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    gate = tmp_path / "gate"
    write_notebook(jupyter_lab.root_dir, "timeline.ipynb", [
        setup_cell(tmp_path / "state.duckdb"),
        "wide = FanOut(n=200, fail_every=10).start()\nwide.wait(120)\nwide",
        f"held = FanOut(n=16, seconds=0.2, gate={str(gate)!r}).start()\nheld",
    ])
    open_notebook(page, jupyter_lab, "timeline.ipynb")
    run_all_cells(page)

    # 200-way: one group row, collapsed, with its summary; rows keep their height.
    wide = cell_output(page, 1)
    expect(wide.locator(".onb-monitor")).to_have_attribute("data-status", "succeeded")
    show_tab(wide, "timeline")
    group = wide.locator(".onb-tl-row.onb-tl-group")
    expect(group).to_have_count(1)
    expect(group).to_contain_text("200 x Deploy (180 ok, 20 failed)")
    expect(wide.locator(".onb-tl-row.onb-tl-step")).to_have_count(2)  # prepare, report
    assert min(bar_heights(wide)) >= 12
    screenshot(page, "timeline-200-collapsed")
    group.locator(".onb-tl-toggle").click()
    expect(wide.locator(".onb-tl-row.onb-tl-step")).to_have_count(202)
    assert min(bar_heights(wide)) >= 12
    box = wide.locator(".onb-timeline")
    sizes = box.evaluate("e => [e.scrollHeight, e.clientHeight]")
    assert sizes[0] > sizes[1] * 3  # 200 rows scroll; they are not squeezed
    box.scroll_into_view_if_needed()
    inside = ("(e) => { const b = e.closest('.onb-timeline').getBoundingClientRect(); "
              "const r = e.getBoundingClientRect(); "
              "return r.top >= b.top - 1 && r.bottom <= b.bottom + 1; }")
    report = wide.locator('.onb-tl-row[data-row="report"]')
    assert not report.evaluate(inside)
    box.evaluate("e => { e.scrollTop = e.scrollHeight; }")
    assert report.evaluate(inside)  # scrolling the timeline reaches the last row
    screenshot(page, "timeline-200-expanded")
    group.locator(".onb-tl-toggle").click()
    expect(wide.locator(".onb-tl-row.onb-tl-step")).to_have_count(2)

    # 16-way, still running (held at the gate): expanded, a waiting bar, live logs.
    held = cell_output(page, 2)
    expect(held.locator('tr[data-step="hold"] .onb-pill')).to_have_text("waiting")
    show_tab(held, "timeline")
    expect(held.locator(".onb-tl-row.onb-tl-group")).to_contain_text("16 x Deploy (16 ok)")
    expect(held.locator(".onb-tl-row.onb-tl-step")).to_have_count(18)  # + prepare, hold
    expect(held.locator('.onb-tl-row[data-row="hold"] .onb-tl-bar.k-waiting')).to_have_count(1)
    assert min(bar_heights(held)) >= 12
    expect(held.locator(".onb-progress-text")).to_contain_text("total unknown")
    page.set_viewport_size({"width": 1400, "height": 2400})
    picture(held, "monitor-timeline.png")
    save_doc_image(ARTIFACTS_DIR / "monitor-timeline.png", "monitor-timeline.png")

    show_tab(held, "logs")
    lines = held.locator(".onb-log-line")
    expect(lines.first).to_be_visible()
    expect(held.locator(".onb-logbox")).to_contain_text("deploying 15")
    expect(held.locator(".onb-logbox")).to_contain_text("holding")
    held.locator("select.onb-log-step").select_option("deploy-3")
    expect(lines).to_have_count(2)  # its print and its log record
    expect(held.locator(".onb-log-line .onb-log-where").first).to_have_text("deploy-3 #1")
    held.locator("select.onb-log-step").select_option("")
    held.locator("input.onb-log-text").fill("tenant 7 done")
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("INFO")
    held.locator("input.onb-log-text").fill("")
    expect(held.locator(".onb-log-follow")).to_be_checked()
    before = lines.count()
    gate.touch()  # the run goes on: the report step prints, the view follows
    expect(held.locator(".onb-monitor")).to_have_attribute("data-status", "succeeded")
    expect(held.locator(".onb-logbox")).to_contain_text("deploying 16")
    assert lines.count() > before
    picture(held, "monitor-logs.png")
    save_doc_image(ARTIFACTS_DIR / "monitor-logs.png", "monitor-logs.png")


def test_a_kernel_restart_mid_step_then_a_takeover_elsewhere(
        jupyter_lab: JupyterLab, browser_page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    import orbits_nb as ob

    page = browser_page
    gate = tmp_path / "gate"
    state = tmp_path / "state.duckdb"
    write_notebook(jupyter_lab.root_dir, "restart.ipynb", [
        setup_cell(state),
        f"run = FanOut(n=2, gate={str(gate)!r}).start()\nrun",
    ])
    open_notebook(page, jupyter_lab, "restart.ipynb")
    run_all_cells(page)
    output = cell_output(page, 1)
    monitor = output.locator(".onb-monitor")
    expect(output.locator('tr[data-step="hold"] .onb-pill')).to_have_text("waiting")
    run_id = str(monitor.get_attribute("data-run-id"))
    expect(output.locator("button.onb-cancel")).to_be_enabled()

    # The kernel dies mid-step (killed: nothing gets to record anything); JupyterLab
    # notices and starts a fresh one.
    engine = ob.Engine(state)
    try:
        owner = engine.get_run(run_id).state().owner
    finally:
        engine.close()
    os.kill(int(owner["pid"]), signal.SIGKILL)
    gone = output.locator(".onb-gone")
    expect(gone).to_contain_text("kernel gone - this view is no longer live")
    for name in ("retry", "cancel", "reset"):
        expect(output.locator(f"button.onb-{name}")).to_be_disabled()
    expect(monitor).to_have_class(re.compile("onb-kernel-gone"))
    screenshot(page, "monitor-kernel-gone")

    # Another process takes the run over and finishes it.
    gate.touch()
    script = ("import sys, orbits_nb as ob\n"
              f"sys.path.insert(0, {str(TESTS)!r})\n"
              f"run = ob.resume({run_id!r}, engine=ob.Engine({str(state)!r}))\n"
              "print(run.wait(120))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    engine = ob.Engine(state)
    try:
        folded = engine.get_run(run_id).state()
    finally:
        engine.close()
    spans = folded.steps["hold"].spans
    assert [s.status for s in spans] == ["interrupted", "succeeded"]
    assert [s.status for s in folded.spans] == ["interrupted", "succeeded"]
    assert folded.status == "succeeded"


def test_a_replayed_run_keeps_its_recorded_durations_in_the_widget(
        jupyter_lab: JupyterLab, browser_page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    fix = tmp_path / "fixed"
    write_notebook(jupyter_lab.root_dir, "replayed.ipynb", [
        setup_cell(tmp_path / "state.duckdb"),
        f"run = DeployBackend(client='acme', flaky={str(fix)!r}).start()\n"
        "try:\n    run.wait(60)\nexcept ob.StepFailed:\n    pass\n"
        f"open({str(fix)!r}, 'w').close()\nagain = run.retry()\nagain.wait(60)\nagain",
    ])
    open_notebook(page, jupyter_lab, "replayed.ipynb")
    run_all_cells(page)
    output = cell_output(page, 1)
    expect(output.locator(".onb-monitor")).to_have_attribute("data-status", "succeeded")
    row = output.locator('tr[data-step="git-create"]')
    expect(row.locator(".onb-pill")).to_have_text("replayed")
    duration = row.locator("td.onb-duration")
    expect(duration).to_have_text(re.compile(r"\d.* \(recorded\)$"))
    assert duration.inner_text() != "0 ms (recorded)"
    expect(output.locator(".onb-progress-text")).to_contain_text(
        "execution 2 of 2 (1 failed, 2 succeeded)")
    show_tab(output, "timeline")
    expect(output.locator('.onb-tl-row[data-row="git-create"] .onb-tl-replayed')
           ).to_have_count(1)
    screenshot(page, "monitor-replayed")
