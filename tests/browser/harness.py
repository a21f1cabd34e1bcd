"""Drive a real JupyterLab in Debian's headless Chromium, for the browser tests.

A Chromium page driven by Playwright's sync API (`chromium_page`) and the few
notebook gestures the tests need; the server itself is `lab_server`, re-exported
here so tests import from one place. Playwright is imported lazily so that collecting
the rest of the test suite never needs it.

Example::

    with running_jupyter_lab(tmp) as lab, chromium_page(tmp / "profile") as page:
        write_notebook(lab.root_dir, "demo.ipynb", ["print('hi')"])
        open_notebook(page, lab, "demo.ipynb")
        run_all_cells(page)
        expect(cell_output(page, 0)).to_contain_text("hi")
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .lab_server import HarnessError, JupyterLab, running_jupyter_lab

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

__all__ = [
    "ARTIFACTS_DIR",
    "element_screenshot",
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "HarnessError",
    "JupyterLab",
    "cell_output",
    "chromium_page",
    "click_menu",
    "kernel_dialog",
    "open_notebook",
    "run_all_cells",
    "running_jupyter_lab",
    "screenshot",
    "wait_kernel_idle",
    "write_notebook",
]

# Debian's package; ORBITS_NB_CHROMIUM points elsewhere (another distro's binary name).
CHROMIUM_PATH = Path(os.environ.get("ORBITS_NB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless=new",
    # Root inside a container has no usable sandbox; the page is our own localhost.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machine reaches no Google service: keep Chromium from trying and stalling.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Debian's wrapper only adds this when /dev/shm is small, and its check breaks when
    # findmnt prints two lines; containers often have a 64 MiB /dev/shm.
    "--disable-dev-shm-usage",
)
VIEWPORT_SIZE = (1400, 1000)
ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "artifacts"

# Generous: a kernel starting on two busy cores can take tens of seconds.
UI_TIMEOUT_MS = 60_000
KERNEL_TIMEOUT_MS = 120_000
_POLL_MS = 250

# Scoped to the notebook on show: other open notebooks keep their cells in the DOM.
_PANEL = ".jp-NotebookPanel:visible"
_CELL = f"{_PANEL} .jp-Notebook .jp-Cell"
_PROMPT = f"{_PANEL} .jp-Notebook .jp-CodeCell .jp-InputArea-prompt"
_EXECUTION_INDICATOR = f"{_PANEL} .jp-Notebook-ExecutionIndicator"


@contextlib.contextmanager
def chromium_page(user_data_dir: Path, executable: Path = CHROMIUM_PATH) -> Iterator[Page]:
    """Launch Debian's Chromium headless on a new, empty profile and yield one page."""
    from playwright.sync_api import expect, sync_playwright

    # Playwright's 5 s default for `expect` is too short for widgets on two busy cores.
    expect.set_options(timeout=UI_TIMEOUT_MS)
    user_data_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(executable),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": VIEWPORT_SIZE[0], "height": VIEWPORT_SIZE[1]},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            context.close()


def write_notebook(
    root: Path, name: str, cells: Sequence[str], kernel_name: str | None = "python3"
) -> Path:
    """Write an nbformat 4 notebook of code cells without outputs; return its path.

    A named kernel spec keeps JupyterLab from asking which kernel to use; pass
    `kernel_name=None` to get a notebook that makes it ask.
    """
    metadata: dict[str, object] = {"language_info": {"name": "python"}}
    if kernel_name is not None:
        metadata["kernelspec"] = {"name": kernel_name, "display_name": kernel_name}
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata,
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{index}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for index, source in enumerate(cells)
        ],
    }
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return path


def kernel_dialog(page: Page) -> Locator:
    """Return JupyterLab's "Select Kernel" dialog (absent unless it is showing)."""
    return page.locator(".jp-Dialog").filter(
        has=page.locator(".jp-Dialog-header", has_text=re.compile(r"^\s*Select Kernel\s*$"))
    )


def _dismiss_kernel_dialog(page: Page) -> None:
    # Accepting keeps the preselected kernel: the notebook's own, else the default.
    # Any other dialog is left alone so the test sees it instead of a silent click.
    dialog = kernel_dialog(page)
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()


def _kernel_status(page: Page) -> str:
    indicator = page.locator(_EXECUTION_INDICATOR)
    if indicator.count() == 0:
        return "missing"
    return indicator.first.get_attribute("data-status") or "unknown"


def _prompts(page: Page) -> list[str]:
    return page.locator(_PROMPT).all_inner_texts()


def _pending_cells(page: Page) -> int:
    """Count code cells queued or running: their prompt reads `[*]:`."""
    return sum("*" in prompt for prompt in _prompts(page))


def wait_kernel_idle(page: Page, timeout_ms: float = KERNEL_TIMEOUT_MS) -> None:
    """Wait until the notebook's kernel is idle and no cell is queued or running.

    Idle is read from the toolbar's execution indicator (`data-status`), which follows
    the kernel's own status messages, together with the cells' `[*]` prompts, since
    the kernel can be idle for an instant between two queued cells. Both must hold on
    two polls in a row.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    calm_polls, status = 0, "missing"
    while time.monotonic() < deadline:
        _dismiss_kernel_dialog(page)
        status = _kernel_status(page)
        calm = status == "idle" and _pending_cells(page) == 0
        calm_polls = calm_polls + 1 if calm else 0
        if calm_polls >= 2:
            return
        page.wait_for_timeout(_POLL_MS)
    raise HarnessError(
        f"kernel not idle after {timeout_ms / 1000:.0f} s (last status {status!r}, "
        f"{_pending_cells(page)} cells pending)"
    )


def open_notebook(page: Page, lab: JupyterLab, name: str) -> None:
    """Open `name` (relative to the root dir) in JupyterLab and wait for its kernel."""
    from playwright.sync_api import expect

    # A fresh workspace per load: the server keeps the layouts of earlier tests, and a
    # notebook restored from one would otherwise be taken for this one.
    workspace = f"test-{secrets.token_hex(4)}"
    url = lab.url(f"lab/workspaces/{workspace}/tree/{quote(name)}")
    page.goto(url, wait_until="domcontentloaded")
    # The tab on show names its document's path in its tooltip.
    current_tab = page.locator(
        "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current[data-type='document-title']"
    )
    path_line = re.compile(f"^Path: {re.escape(name)}$", re.MULTILINE)
    expect(current_tab).to_have_attribute("title", path_line, timeout=UI_TIMEOUT_MS)
    page.locator(_CELL).first.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    wait_kernel_idle(page)


def click_menu(page: Page, menu: str, item: str) -> None:
    """Click `item` in the menu bar's `menu`, both matched by their exact labels."""
    # By label: the menus' command ids (`runmenu:run-all`, ...) are not public API.
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def run_all_cells(page: Page, timeout_ms: float = KERNEL_TIMEOUT_MS) -> None:
    """Run every cell through "Run > Run All Cells", then wait until all have run.

    The run counts as started once any prompt changes (to `[*]` or a new count), so
    a run that finishes between two polls is not mistaken for one not yet begun.
    """
    before = _prompts(page)
    if not before:
        return
    click_menu(page, "Run", "Run All Cells")
    deadline = time.monotonic() + timeout_ms / 1000
    while _prompts(page) == before:
        if time.monotonic() > deadline:
            raise HarnessError(f"Run All Cells started no cell (prompts {before})")
        _dismiss_kernel_dialog(page)
        page.wait_for_timeout(_POLL_MS)
    wait_kernel_idle(page, max(deadline - time.monotonic(), 0) * 1000)


def cell_output(page: Page, index: int) -> Locator:
    """Return the output nodes of cell number `index` (from 0) of the shown notebook.

    One node per output: use `.nth()` or `.filter()` when a cell displays several.
    """
    return page.locator(_CELL).nth(index).locator(".jp-OutputArea-output")


def element_screenshot(locator: Locator, path: Path, attempts: int = 5) -> Path:
    """A PNG of one element; taken again when a redraw of the output replaced the
    element while it was being shot (the locator finds the new one)."""
    from playwright.sync_api import Error

    for attempt in range(attempts):
        try:
            locator.screenshot(path=str(path))
            return path
        except Error as err:
            if "not attached" not in str(err) or attempt == attempts - 1:
                raise
            time.sleep(0.2)
    return path


def screenshot(page: Page, name: str) -> Path:
    """Save a PNG of the page to tests/artifacts/<name>.png and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "page"
    path = ARTIFACTS_DIR / f"{safe}.png"
    page.screenshot(path=str(path))
    return path
