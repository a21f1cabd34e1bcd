"""Every widget readable in JupyterLab's dark theme: the computed contrast of selected
rows (dashboard, monitor) and of the drift widget's diff against its background."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .harness import (
    JupyterLab,
    cell_output,
    open_notebook,
    run_all_cells,
    screenshot,
    write_notebook,
)
from .test_drift_widget import cells as drift_cells
from .test_drift_widget import row as drift_row

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: WCAG AA for normal text.
AA = 4.5

# The contrast ratio of each element's text against what is painted behind it: the
# background colours of it and its ancestors composed from the first opaque one up,
# the text colour composed over that (colours may be rgb(), rgba() or color(srgb ...)).
_CONTRAST = """
(elements) => {
  const parse = (text) => {
    let m = text.match(/^rgba?\\(([^)]*)\\)$/);
    if (m) {
      const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
      return [p[0] / 255, p[1] / 255, p[2] / 255, p.length > 3 ? p[3] : 1];
    }
    m = text.match(/^color\\(srgb ([^)]*)\\)$/);
    if (m) {
      const p = m[1].split(/[\\s\\/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    }
    throw new Error(`unknown colour ${text}`);
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const behind = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] >= 1) break;
    }
    let paint = [1, 1, 1, 1];  // the canvas
    for (const layer of layers.reverse()) paint = over(layer, paint);
    return paint;
  };
  const luminance = (c) => {
    const lin = c.slice(0, 3).map((v) => (v <= 0.03928 ? v / 12.92
      : Math.pow((v + 0.055) / 1.055, 2.4)));
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  return elements.map((el) => {
    const bg = behind(el);
    const fg = over(parse(getComputedStyle(el).color), bg);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    return { text: el.textContent.trim().slice(0, 40), ratio: (hi + 0.05) / (lo + 0.05),
             color: getComputedStyle(el).color, background: bg };
  });
}
"""


def contrasts(cells: Locator) -> list[dict[str, Any]]:
    """The contrast of every non-empty element among ``cells``."""
    found = cells.evaluate_all(_CONTRAST)
    return [c for c in found if c["text"]]


def assert_readable(cells: Locator, what: str) -> None:
    found = contrasts(cells)
    assert found, f"no text in {what}"
    poor = [c for c in found if c["ratio"] < AA]
    assert not poor, f"{what}: text below {AA}:1 against its background: {poor}"


def switch_to_dark(page: Page) -> None:
    """Settings > Theme > JupyterLab Dark, as a user does."""
    from playwright.sync_api import expect

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Settings$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Theme$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^JupyterLab Dark$")).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Dark")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")


def test_widgets_are_readable_in_the_dark_theme(jupyter_lab: JupyterLab, browser_page: object,
                                                tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(browser_page, Page)
    page = browser_page
    state = tmp_path / "state.duckdb"
    notebook = drift_cells(state, tmp_path / "demo")[:3] + [
        "board = ob.dashboard(interval=1.0)\nboard",
        "run = DriftDemo().start()\nrun.wait()\nrun",
    ]
    write_notebook(jupyter_lab.root_dir, "dark.ipynb", notebook)
    open_notebook(page, jupyter_lab, "dark.ipynb")
    run_all_cells(page)

    # The dashboard: a selected row, in the light theme and then in the dark one.
    board = cell_output(page, 3).locator(".onb-dashboard")
    board.locator("tbody tr").first.click()
    selected = board.locator("tbody tr.onb-selected")
    expect(selected).to_have_count(1)
    texts = selected.locator("td, td b, td .onb-id, td .onb-started div")
    assert_readable(texts, "the dashboard's selected row (light)")
    switch_to_dark(page)
    assert_readable(texts, "the dashboard's selected row")
    assert_readable(board.locator("th, .onb-range, .onb-title, .onb-sub"),
                    "the dashboard's headings")

    # The monitor: a selected step.
    monitor = cell_output(page, 4).locator(".onb-monitor")
    monitor.locator("tbody tr[data-step]").first.click()
    step = monitor.locator("tbody tr.onb-selected")
    expect(step).to_have_count(1)
    assert_readable(step.locator("td"), "the monitor's selected step")
    assert_readable(monitor.locator(".onb-title, th"), "the monitor's headings")
    # The diagram keeps its light panel: its node colours and grey labels are drawn for one
    # (on the dark page they were dark grey on near-black).
    panel = monitor.locator(".onb-diagram").first
    expect(panel.locator("svg text").first).to_be_visible()
    assert panel.evaluate("(el) => getComputedStyle(el).backgroundColor") == "rgb(248, 250, 252)"

    # The drift widget: a diff, desired and actual side by side.
    widget = cell_output(page, 2).locator(".orbits-drift-widget")
    config = drift_row(widget, "app.cfg")
    config.locator("summary").click()
    diff = config.locator("table.od-diff")
    expect(diff).to_be_visible()
    assert_readable(diff.locator("td.od-desired pre, td.od-actual pre, th, code"),
                    "the drift widget's diff")
    assert_readable(widget.locator(".od-head"), "the drift widget's header")
    assert_readable(widget.locator(".od-badge"), "the drift widget's badges")
    screenshot(page, "dark-theme-widgets")
    page.set_viewport_size({"width": 1400, "height": 1800})
    screenshot(page, "dark-theme-widgets-tall")
