"""The run monitor in a real JupyterLab: colours move, the inspector, Approve resumes."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from orbits_nb.core.dot import STYLES

from .harness import (
    ARTIFACTS_DIR,
    JupyterLab,
    cell_output,
    element_screenshot,
    open_notebook,
    run_all_cells,
    screenshot,
    write_notebook,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent.parent
DOCS = TESTS.parent / "docs"


def setup_cell(state: Path) -> str:
    # Each notebook gets its own state file; the flows come from the test suite.
    return (f"import os, sys\nos.environ['ORBITS_NB_STATE'] = {str(state)!r}\n"
            f"sys.path.insert(0, {str(TESTS)!r})\n"
            "import orbits_nb as ob\n"
            "from test_views_flows import DeployBackend, Release")


def node(output: Locator, step: str) -> Locator:
    return output.locator(f'.onb-diagram g.node[data-step="{step}"]')


def fill_of(locator: Locator) -> str:
    return str(locator.locator("path, polygon").first.get_attribute("fill"))


def save_doc_image(path: Path, name: str) -> None:
    """Refresh the README's screenshot (docs/) when ORBITS_NB_UPDATE_DOCS=1."""
    if os.environ.get("ORBITS_NB_UPDATE_DOCS") != "1":
        return
    DOCS.mkdir(exist_ok=True)
    shutil.copyfile(path, DOCS / name)


def test_monitor_colours_follow_the_run_and_inspector_shows_traceback(
        jupyter_lab: JupyterLab, browser_page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    gate = tmp_path / "gate"
    write_notebook(jupyter_lab.root_dir, "monitor.ipynb", [
        setup_cell(tmp_path / "state.duckdb"),
        f"run = DeployBackend(client='acme', fail=True, nested=True, gate={str(gate)!r})"
        ".start()\nrun",
    ])
    open_notebook(page, jupyter_lab, "monitor.ipynb")
    run_all_cells(page)
    output = cell_output(page, 1)
    monitor = output.locator(".onb-monitor")
    expect(monitor).to_be_visible()

    # While the gate is closed: parallel steps done, the nested workflow drawn as a
    # cluster, the gate step waiting (amber), the run running.
    waiting = node(output, "wait")
    expect(waiting).to_have_attribute("class", re.compile(r"\bst-waiting\b"))
    assert fill_of(waiting) == STYLES["waiting"].fill
    expect(node(output, "git-create")).to_have_attribute("class", re.compile("st-succeeded"))
    expect(node(output, "aws-create")).to_have_attribute("class", re.compile("st-succeeded"))
    expect(output.locator('.onb-diagram g.cluster[data-step="nested"]')).to_have_count(1)
    expect(monitor).to_have_attribute("data-status", "running")
    expect(output.locator('tr[data-step="wait"] .onb-pill')).to_have_text("waiting")
    screenshot(page, "monitor-running")

    gate.touch()
    failed = node(output, "iac-deploy")
    expect(failed).to_have_attribute("class", re.compile(r"\bst-failed\b"))
    assert fill_of(failed) == STYLES["failed"].fill
    expect(node(output, "wait")).to_have_attribute("class", re.compile("st-succeeded"))
    expect(node(output, "notify")).to_have_attribute("class", re.compile("st-succeeded"))
    expect(monitor).to_have_attribute("data-status", "failed")
    expect(output.locator(".onb-head .onb-pill").first).to_have_text("failed")

    # Clicking the failed node opens the inspector with the traceback and the logs.
    failed.click()
    inspector = output.locator(".onb-inspector")
    expect(inspector).to_have_attribute("data-step", "iac-deploy")
    expect(inspector.locator(".onb-errline")).to_have_text("RuntimeError: stack acme failed")
    expect(inspector.locator("pre.onb-trace")).to_contain_text(
        "Traceback (most recent call last)")
    expect(inspector.locator("pre.onb-trace")).to_contain_text("raise RuntimeError")
    expect(inspector.locator("pre.onb-logs")).to_contain_text("about to fail")
    expect(node(output, "iac-deploy")).to_have_attribute("class", re.compile("onb-selected"))
    expect(output.locator('tr[data-step="iac-deploy"]')).to_have_class(
        re.compile("onb-selected"))
    shot = screenshot(page, "monitor-failed-inspector")
    assert shot.stat().st_size > 10_000
    page.set_viewport_size({"width": 1400, "height": 2200})
    element_screenshot(output.locator(".onb-monitor"), ARTIFACTS_DIR / "monitor-widget.png")
    save_doc_image(ARTIFACTS_DIR / "monitor-widget.png", "monitor.png")

    # Selecting a secret-bearing step in the table shows its arguments, masked.
    output.locator('tr[data-step="aws-create"]').click()
    expect(inspector).to_have_attribute("data-step", "aws-create")
    expect(inspector).to_contain_text('"token": "****"')
    expect(inspector).not_to_contain_text("s3cr3t")


def test_approve_button_resumes_the_run(jupyter_lab: JupyterLab, browser_page: Page,
                                        tmp_path: Path) -> None:
    from playwright.sync_api import expect

    import orbits_nb as ob

    page = browser_page
    state = tmp_path / "state.duckdb"
    write_notebook(jupyter_lab.root_dir, "approval.ipynb", [
        setup_cell(state), "run = Release(version='2.0').start()\nrun"])
    open_notebook(page, jupyter_lab, "approval.ipynb")
    run_all_cells(page)
    output = cell_output(page, 1)
    banner = output.locator('.onb-approval[data-step="approve"]')
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Ship 2.0?")
    expect(node(output, "approve")).to_have_attribute("class", re.compile("st-waiting"))
    expect(node(output, "approve")).to_contain_text("awaiting approval")
    banner.locator("input").fill("checked the release notes")
    screenshot(page, "monitor-approval-pending")
    banner.locator(".onb-approve").click()

    monitor = output.locator(".onb-monitor")
    expect(monitor).to_have_attribute("data-status", "succeeded")
    expect(node(output, "ship")).to_have_attribute("class", re.compile("st-succeeded"))
    expect(output.locator(".onb-approval")).to_have_count(0)
    expect(output.locator(".onb-notice")).to_contain_text("approved by")
    screenshot(page, "monitor-approval-done")

    engine = ob.Engine(state)
    try:
        rows = engine.store.fetch("SELECT decision, decided_via, comment FROM approvals")
    finally:
        engine.close()
    assert rows == [("approved", "notebook", "checked the release notes")]


def test_reset_from_a_step_then_retry_runs_it_again(jupyter_lab: JupyterLab,
                                                    browser_page: Page,
                                                    tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    write_notebook(jupyter_lab.root_dir, "reset.ipynb", [
        setup_cell(tmp_path / "state.duckdb"),
        "run = DeployBackend(client='again').start()\nrun.wait(60)\nrun",
    ])
    open_notebook(page, jupyter_lab, "reset.ipynb")
    run_all_cells(page)
    output = cell_output(page, 1)
    monitor = output.locator(".onb-monitor")
    retry, cancel = output.locator("button.onb-retry"), output.locator("button.onb-cancel")
    reset = output.locator("button.onb-reset")
    progress = output.locator(".onb-progress-text")
    expect(monitor).to_have_attribute("data-status", "succeeded")
    expect(progress).to_contain_text("4/4 steps done")
    for button in (retry, cancel, reset):
        expect(button).to_be_disabled()
    expect(reset).to_have_attribute("title", re.compile("select a step that ran"))

    node(output, "iac-deploy").click()
    expect(reset).to_be_enabled()
    expect(reset).to_have_text("⟲ Reset from iac-deploy…")
    reset.click()
    confirm = output.locator(".onb-confirm")
    expect(confirm).to_contain_text(
        "2 recorded steps (iac-deploy, sql-migrate) will be discarded")
    confirm.locator(".onb-confirm-reset").click()

    # The run now says it will run again from there, and Retry does that.
    expect(monitor).to_have_attribute("data-status", "reset")
    expect(output.locator(".onb-head .onb-pill").first).to_have_text("reset")
    expect(output.locator(".onb-note")).to_contain_text(
        "will re-run from iac-deploy: press Retry")
    expect(progress).to_have_text("2/4 steps done · 2 pending")
    for step in ("iac-deploy", "sql-migrate"):
        expect(output.locator(f'tr[data-step="{step}"] .onb-pill')).to_have_text("pending")
        expect(node(output, step)).to_have_attribute("class", re.compile(r"\bst-pending\b"))
    expect(output.locator(".onb-notice")).to_contain_text("reset from 'iac-deploy'")
    expect(retry).to_be_enabled()
    expect(cancel).to_be_disabled()
    expect(output.locator(".onb-diagram g.node title", has_text="#end")).to_have_count(0)
    screenshot(page, "monitor-after-reset")

    retry.click()
    expect(monitor).to_have_attribute("data-status", "succeeded")
    expect(progress).to_contain_text("4/4 steps done")
    expect(node(output, "git-create")).to_have_attribute("class", re.compile("st-replayed"))
    expect(node(output, "iac-deploy")).to_have_attribute("class", re.compile("st-succeeded"))
    expect(output.locator('tr[data-step="sql-migrate"] .onb-pill')).to_have_text("succeeded")
    expect(output.locator(".onb-note")).to_have_count(0)
    expect(retry).to_be_disabled()
    screenshot(page, "monitor-after-retry")


def test_a_cell_blocking_the_kernel_disables_the_buttons_until_it_returns(
        jupyter_lab: JupyterLab, browser_page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from .harness import click_menu, wait_kernel_idle

    page = browser_page
    write_notebook(jupyter_lab.root_dir, "blocked.ipynb", [
        setup_cell(tmp_path / "state.duckdb"),
        "run = Release(version='5.0').start()\nrun",
        "run.wait(600)  # blocks the kernel: the monitor cannot act meanwhile",
    ])
    open_notebook(page, jupyter_lab, "blocked.ipynb")
    click_menu(page, "Run", "Run All Cells")
    output = cell_output(page, 1)
    banner = output.locator('.onb-approval[data-step="approve"]')
    expect(banner).to_be_visible()
    # The kernel is blocked in run.wait(): a press would wait, unseen, for ever.
    expect(banner.locator(".onb-busy")).to_contain_text("a cell is blocking this kernel")
    expect(banner.locator(".onb-busy")).to_contain_text("orbits-nb approve")
    expect(banner.locator(".onb-approve")).to_be_disabled()
    expect(output.locator("button.onb-cancel")).to_be_disabled()
    screenshot(page, "monitor-kernel-blocked")

    click_menu(page, "Kernel", "Interrupt Kernel")
    wait_kernel_idle(page)
    expect(banner.locator(".onb-busy")).to_have_count(0)
    expect(output.locator("button.onb-cancel")).to_be_enabled()
    banner.locator(".onb-approve").click()
    expect(output.locator(".onb-monitor")).to_have_attribute("data-status", "succeeded")
    expect(output.locator(".onb-notice")).to_contain_text("approved by")
