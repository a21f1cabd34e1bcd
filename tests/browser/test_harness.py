"""The harness drives a real JupyterLab: widgets round-trip, SVG and text render."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from .harness import (
    JupyterLab,
    cell_output,
    click_menu,
    kernel_dialog,
    open_notebook,
    run_all_cells,
    screenshot,
    wait_kernel_idle,
    write_notebook,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDGET_CELL = """\
import ipywidgets as widgets
from IPython.display import display

label = widgets.Label(value="clicks: 0")
button = widgets.Button(description="Count me")
clicks = []

def on_click(_button):
    clicks.append(1)
    label.value = f"clicks: {len(clicks)}"

button.on_click(on_click)
display(widgets.VBox([button, label]))
"""

SVG_CELL = """\
from IPython.display import SVG, display

display(SVG(
    '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="60">'
    '<rect id="orbits-probe" width="160" height="60" fill="#2a7ab0"/>'
    '<text x="12" y="38" font-size="22" fill="white">orbits svg</text>'
    '</svg>'
))
"""

PRINT_CELL = 'print("orbits-nb says " + "hello")'

ENV_CELL = 'import os; print("state=" + os.environ.get("ORBITS_NB_STATE", "<unset>"))'


def test_widget_svg_and_text_render_in_jupyterlab(
    jupyter_lab: JupyterLab, jupyter_lab_env: dict[str, str], browser_page: Page
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    cells = [WIDGET_CELL, SVG_CELL, PRINT_CELL, ENV_CELL]
    write_notebook(jupyter_lab.root_dir, "harness.ipynb", cells)
    open_notebook(page, jupyter_lab, "harness.ipynb")
    run_all_cells(page)

    # The joined string only exists in the output, never in the cell's source.
    expect(cell_output(page, 2)).to_contain_text("orbits-nb says hello")
    # The kernel inherits the environment the test handed to the server.
    expect(cell_output(page, 3)).to_have_text(f"state={jupyter_lab_env['ORBITS_NB_STATE']}")

    # JupyterLab renders image/svg+xml as an <img> with a data: URI; a decoded image
    # has the SVG's own width, which proves the browser parsed it.
    expect(cell_output(page, 1)).to_have_attribute("data-mime-type", "image/svg+xml")
    svg = cell_output(page, 1).locator("img")
    expect(svg).to_be_visible()
    expect(svg).to_have_attribute("src", re.compile("orbits-probe"))
    assert svg.evaluate("img => img.decode().then(() => img.naturalWidth)") == 160

    button = cell_output(page, 0).get_by_role("button", name="Count me")
    label = cell_output(page, 0).locator(".widget-label")
    expect(button).to_be_visible()
    expect(label).to_have_text("clicks: 0")
    screenshot(page, "harness-before-click")

    # Click -> comm message to the kernel -> on_click -> state update back to the page.
    button.click()
    expect(label).to_have_text("clicks: 1")
    button.click()
    expect(label).to_have_text("clicks: 2")
    screenshot(page, "harness-after-click")


def test_kernel_selection_dialog_is_accepted(jupyter_lab: JupyterLab, browser_page: Page) -> None:
    from playwright.sync_api import expect

    page = browser_page
    write_notebook(jupyter_lab.root_dir, "dialog.ipynb", ['print("after " + "dialog")'])
    open_notebook(page, jupyter_lab, "dialog.ipynb")
    # "Change Kernel…" raises the same dialog JupyterLab shows when it cannot tell
    # which kernel a notebook wants; the harness must get past it on its own.
    click_menu(page, "Kernel", "Change Kernel…")
    expect(kernel_dialog(page)).to_be_visible()
    screenshot(page, "harness-kernel-dialog")

    wait_kernel_idle(page)
    expect(kernel_dialog(page)).to_have_count(0)
    run_all_cells(page)
    expect(cell_output(page, 0)).to_have_text("after dialog")
