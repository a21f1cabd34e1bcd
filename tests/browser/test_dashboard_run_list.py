"""The dashboard over 10,000 recorded runs in a real JupyterLab: pages, filters, search,
open a run by id, copy its id, and ``ob.get_run(id)`` showing the run's monitor."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

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

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent.parent
DOCS = TESTS.parent / "docs"
COUNT = 10_000


@pytest.fixture
def many_runs(tmp_path: Path) -> Path:
    """A state file holding 10,000 finished runs, written as events through the store."""
    sys.path.insert(0, str(TESTS))
    from run_list_data import write_runs

    from orbits_nb.runbooks import schedules
    from orbits_nb.store import open_store

    state = tmp_path / "state.duckdb"
    store = open_store(state)
    try:
        write_runs(store, COUNT)
        schedules.add(store, "30 2 * * *", TESTS / "notebooks" / "success.ipynb",
                      name="nightly", cli=[("client", "acme"), ("api_token", "env:TOKEN")])
        store.rebuild_history()  # the kernel reads the history tables at once
    finally:
        store.close()
    return state


def test_run_list_of_ten_thousand_runs(jupyter_lab: JupyterLab, browser_page: object,
                                       many_runs: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(browser_page, Page)
    page = browser_page
    sys.path.insert(0, str(TESTS))
    from run_list_data import expected, run_id

    counts = expected(COUNT)
    write_notebook(jupyter_lab.root_dir, "runs.ipynb", [
        f"import os\nos.environ['ORBITS_NB_STATE'] = {str(many_runs)!r}\n"
        "import orbits_nb as ob\nboard = ob.dashboard(interval=1.0)\nboard",
        f"ob.get_run({run_id(42)!r})",
    ])
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size({"width": 1900, "height": 1100})
    open_notebook(page, jupyter_lab, "runs.ipynb")
    run_all_cells(page)
    output = cell_output(page, 0)
    board = output.locator(".onb-dashboard")
    rows = board.locator(".onb-tablewrap tbody tr")
    pager = board.locator(".onb-pager .onb-range")
    expect(pager).to_have_text("1-50 of 10,000")
    expect(rows).to_have_count(50)
    newest = rows.first
    expect(newest).to_have_attribute("data-run-id", run_id(COUNT - 1))
    expect(newest).to_contain_text("client=hooli, env=prod, n=9999")
    expect(newest).to_contain_text("ana@build-1")
    screenshot(page, "run-list-first-page")
    element_screenshot(board, ARTIFACTS_DIR / "dashboard-run-list.png")
    if os.environ.get("ORBITS_NB_UPDATE_DOCS") == "1":  # refresh the README's picture
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS_DIR / "dashboard-run-list.png", DOCS / "dashboard.png")

    # ob.get_run(id) in a cell shows that run's monitor.
    expect(cell_output(page, 1).locator(".onb-monitor")).to_have_attribute(
        "data-run-id", run_id(42))

    # Paging: next, last, previous, first.
    board.locator("button.onb-next").click()
    expect(pager).to_have_text("51-100 of 10,000")
    expect(newest).to_have_attribute("data-run-id", run_id(COUNT - 51))
    board.locator("button.onb-last").click()
    expect(pager).to_have_text("9,951-10,000 of 10,000")
    expect(rows.last).to_have_attribute("data-run-id", run_id(0))
    expect(board.locator("button.onb-next")).to_be_disabled()
    board.locator("button.onb-prev").click()
    expect(pager).to_have_text("9,901-9,950 of 10,000")
    board.locator("button.onb-first").click()
    expect(pager).to_have_text("1-50 of 10,000")

    # Filters: the latest status, then had failures (failed, or retried into success).
    board.locator("select.onb-f-status").select_option("failed")
    expect(pager).to_have_text(f"1-50 of {counts['failed']:,}")
    expect(rows.locator(".onb-pill", has_text="succeeded")).to_have_count(0)
    board.locator("select.onb-f-status").select_option("")
    board.locator("select.onb-f-had_failures").select_option("yes")
    expect(pager).to_have_text(f"1-50 of {counts['had_failures']:,}")
    expect(rows.locator(".onb-tag-failures").first).to_have_text("had failures")
    board.locator("select.onb-f-had_failures").select_option("")
    board.locator("select.onb-f-source").select_option("schedule")
    expect(pager).to_have_text(f"1-50 of {COUNT // 5:,}")
    expect(newest.locator(".onb-started")).to_contain_text("schedule")
    board.locator("select.onb-f-source").select_option("")
    expect(pager).to_have_text("1-50 of 10,000")

    # The schedules, with their next occurrence.
    board.locator(".onb-schedules summary").click()
    nightly = board.locator('.onb-schedules tr[data-schedule-id="nightly"]')
    expect(nightly).to_contain_text("30 2 * * *")
    expect(nightly).to_contain_text(re.compile(r"\d{4}-\d{2}-\d{2} 02:30:00"))

    # Search: by argument, then by run id.
    search = board.locator("input.onb-f-search")
    search.fill("client=acme")
    search.press("Enter")
    expect(pager).to_have_text(f"1-50 of {counts['acme']:,}")
    search.fill(run_id(1234))
    search.press("Enter")
    expect(pager).to_have_text("1-1 of 1")
    row = rows
    expect(row).to_have_attribute("data-run-id", run_id(1234))
    screenshot(page, "run-list-search")

    # Copy its id.
    row.locator("button.onb-copy").click()
    expect(row.locator("button.onb-copy")).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == run_id(1234)
    search.fill("")
    search.press("Enter")
    expect(pager).to_have_text("1-50 of 10,000")

    # Open a run by id (not on this page): its monitor opens under the list.
    board.locator("input.onb-f-open").fill(run_id(7))
    board.locator("button.onb-open-go").click()
    monitor = output.locator(".onb-monitor")
    expect(monitor).to_have_attribute("data-run-id", run_id(7))
    expect(monitor).to_have_attribute("data-status", "succeeded")
    board.locator("input.onb-f-open").fill("no-such-run")
    board.locator("button.onb-open-go").click()
    expect(board.locator(".onb-notice.error")).to_contain_text("no-such-run")
    screenshot(page, "run-list-open-by-id")

