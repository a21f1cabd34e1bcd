"""The dashboard in a real JupyterLab shows a run that another process executes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent.parent


def test_dashboard_shows_a_run_of_another_process(jupyter_lab: JupyterLab,
                                                  browser_page: Page,
                                                  tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    state, gate = tmp_path / "state.duckdb", tmp_path / "gate"
    write_notebook(jupyter_lab.root_dir, "dashboard.ipynb", [
        f"import os\nos.environ['ORBITS_NB_STATE'] = {str(state)!r}\n"
        "import orbits_nb as ob\nob.dashboard(interval=0.5)",
    ])
    open_notebook(page, jupyter_lab, "dashboard.ipynb")
    run_all_cells(page)
    output = cell_output(page, 0)
    board = output.locator(".onb-dashboard")
    expect(board).to_be_visible()
    expect(board.locator(".onb-empty")).to_have_text("No runs match.")

    # Another process (as a papermill runbook would) executes a run on the same file.
    code = ("import orbits_nb as ob\n"
            "from test_views_flows import DeployBackend\n"
            f"e = ob.Engine({str(state)!r})\n"
            "try:\n"
            f"    e.start(DeployBackend(client='elsewhere', gate={str(gate)!r})).wait(300)\n"
            "finally:\n"
            "    e.close()\n")
    child = subprocess.Popen([sys.executable, "-c", code],
                             env={**os.environ, "PYTHONPATH": str(TESTS)})
    try:
        row = board.locator("tbody tr").first
        expect(row.locator(".onb-pill").first).to_have_text("running")
        expect(row).to_contain_text("DeployBackend")
        expect(row).to_contain_text(f"pid {child.pid}")
        run_id = row.get_attribute("data-run-id")
        assert run_id is not None
        assert run_id.startswith("DeployBackend-")

        # Click-through: the run's monitor follows it from the store.
        row.click()
        monitor = output.locator(".onb-monitor")
        expect(monitor).to_have_attribute("data-run-id", run_id)
        waiting = monitor.locator('.onb-diagram g.node[data-step="wait"]')
        expect(waiting).to_have_attribute("class", re.compile("st-waiting"))
        screenshot(page, "dashboard-running")

        gate.touch()
        assert child.wait(120) == 0
        expect(row.locator(".onb-pill").first).to_have_text("succeeded")
        expect(monitor).to_have_attribute("data-status", "succeeded")
        expect(monitor.locator('.onb-diagram g.node[data-step="sql-migrate"]')
               ).to_have_attribute("class", re.compile("st-succeeded"))
        expect(row).to_contain_text("5/5")
    finally:
        gate.touch()
        child.kill()

    # Filters: a status with no match empties the list; "all" brings the run back.
    board.locator("select.onb-f-status").select_option("failed")
    expect(board.locator(".onb-empty")).to_have_text("No runs match.")
    board.locator("select.onb-f-status").select_option("")
    expect(board.locator(f'tbody tr[data-run-id="{run_id}"]')).to_have_count(1)
    screenshot(page, "dashboard-done")
    page.set_viewport_size({"width": 1400, "height": 2000})
    element_screenshot(board, ARTIFACTS_DIR / "dashboard-widget.png")
