"""The shipped quickstart in a real JupyterLab: the monitor moves while the run runs.

The notebook is used as committed (copied into a JupyterLab of its own, with a fresh
state file, so its run executes instead of replaying a recorded one).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .harness import (
    cell_output,
    click_menu,
    open_notebook,
    running_jupyter_lab,
    screenshot,
    wait_kernel_idle,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"

# Records every status each step row shows, however briefly, as the page changes.
RECORD_STATUSES = """() => {
  window.__seen = {};
  const look = () => {
    for (const row of document.querySelectorAll('.onb-monitor tr[data-step]')) {
      const pill = row.querySelector('.onb-pill');
      if (!pill) continue;
      const seen = (window.__seen[row.dataset.step] ||= []);
      if (seen[seen.length - 1] !== pill.textContent) seen.push(pill.textContent);
    }
  };
  new MutationObserver(look).observe(document.body, {childList: true, subtree: true});
}"""


def cell_index(source_start: str) -> int:
    """The position of the quickstart's cell whose source starts so."""
    cells = json.loads(QUICKSTART.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith(source_start))


def test_quickstart_shows_the_monitor_moving_while_the_run_progresses(
        browser_stack: None, browser_page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    env = {"ORBITS_NB_STATE": str(tmp_path / "state.duckdb")}
    with running_jupyter_lab(tmp_path / "lab", env) as lab:
        (lab.root_dir / "notebooks").mkdir()
        shutil.copy(QUICKSTART, lab.root_dir / "notebooks" / "quickstart.ipynb")
        open_notebook(page, lab, "notebooks/quickstart.ipynb")
        page.evaluate(RECORD_STATUSES)
        click_menu(page, "Run", "Run All Cells")

        output = cell_output(page, cell_index("run = Onboard("))
        monitor = output.locator(".onb-monitor")
        # The monitor is on screen while the run is still in progress...
        expect(monitor).to_have_attribute("data-status", "running")
        expect(output.locator('tr[data-step="db-migrate"] .onb-pill')).to_have_text(
            re.compile("running|retrying"))
        monitor.scroll_into_view_if_needed()
        screenshot(page, "quickstart-running")
        # ...and follows it to its end, by itself.
        expect(monitor).to_have_attribute("data-status", "succeeded")
        for step in ("repo-create", "env-provision", "db-migrate", "notify"):
            expect(output.locator(f'tr[data-step="{step}"] .onb-pill')).to_have_text(
                "succeeded")
            expect(output.locator(f'.onb-diagram g.node[data-step="{step}"]')
                   ).to_have_attribute("class", re.compile(r"\bst-succeeded\b"))
        expect(output.locator(".onb-progress-text")).to_contain_text("4/4 steps done")
        wait_kernel_idle(page)

        seen = page.evaluate("() => window.__seen")
        # Each step was seen in progress before it was seen succeeded.
        assert seen["env-provision"][-1] == "succeeded", seen
        assert "waiting" in seen["env-provision"], seen
        assert seen["db-migrate"][-1] == "succeeded", seen
        assert "running" in seen["db-migrate"], seen
        assert seen["db-migrate"].index("running") < seen["db-migrate"].index("succeeded")

        # The cell that awaited the run printed its result; the rest of the notebook ran.
        expect(cell_output(page, cell_index("result = await run"))).to_contain_text(
            "'migrations': ['0001_init', '0002_users']")
        expect(cell_output(page, cell_index("before = dict(CALLS)"))).to_contain_text(
            "no step ran twice")
        monitor.scroll_into_view_if_needed()
        screenshot(page, "quickstart-done")
