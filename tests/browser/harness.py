"""Drive a real JupyterLab in Debian's headless Chromium, for the browser tests.

Two halves: a JupyterLab server in its own process group (`running_jupyter_lab`) and
a Chromium page driven by Playwright's sync API (`chromium_page`), plus the few
notebook gestures the tests need. Playwright is imported lazily so that collecting
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
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM_PATH = Path("/usr/bin/chromium")
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
VIEWPORT = {"width": 1400, "height": 1000}
ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "artifacts"

# Generous: a cold JupyterLab plus a kernel on two busy cores takes tens of seconds.
SERVER_START_TIMEOUT_S = 120.0
SERVER_STOP_TIMEOUT_S = 20.0
UI_TIMEOUT_MS = 60_000
KERNEL_TIMEOUT_MS = 120_000
_POLL_MS = 250

# JupyterLab settings written into the throwaway user-settings dir: no news/update
# toasts covering the page, and every cell kept in the DOM so locators see them all.
_USER_SETTINGS: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

_CELL = ".jp-Notebook .jp-Cell"
_CODE_CELL = ".jp-Notebook .jp-CodeCell"
_KERNEL_DIALOG = ".jp-Dialog"
_EXECUTION_INDICATOR = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator"


class HarnessError(RuntimeError):
    """JupyterLab or the browser did not reach the state a test needs."""


@dataclass(frozen=True)
class JupyterLab:
    """A running JupyterLab server: where its files live and how to reach it."""

    root_dir: Path
    base_url: str
    token: str
    log_path: Path
    runtime_dir: Path

    def url(self, path: str = "lab") -> str:
        """Return an absolute URL under the server that carries the token."""
        return f"{self.base_url}{path.lstrip('/')}?token={self.token}"

    def api_get(self, path: str) -> object:
        """GET a JSON endpoint of the server's REST API, authenticated by the token."""
        request = urllib.request.Request(
            f"{self.base_url}{path.lstrip('/')}",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_user_settings(settings_dir: Path) -> None:
    for relative, values in _USER_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def _lab_command(root: Path, port: int, token: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        # CI and these machines run as root; the server refuses root without this.
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        # Fail instead of silently moving to another port the harness does not know.
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]


def _lab_env(workdir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    # Config, data and runtime dirs are throwaway so lab workspaces, user settings and
    # kernel connection files never touch the developer's home. The kernel spec and the
    # widgets labextension still come from sys.prefix/share/jupyter, which Jupyter
    # always searches (checked in `_check_server`).
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(workdir / "config"),
        JUPYTER_DATA_DIR=str(workdir / "data"),
        JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
        IPYTHONDIR=str(workdir / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])


def _wait_until_up(lab: JupyterLab, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HarnessError(
                f"JupyterLab exited with code {process.returncode} while starting; "
                f"log {lab.log_path}:\n{_log_tail(lab.log_path)}"
            )
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            lab.api_get("api/status")
            return
        time.sleep(_POLL_MS / 1000)
    raise HarnessError(
        f"JupyterLab did not answer /api/status within {SERVER_START_TIMEOUT_S:.0f} s; "
        f"log {lab.log_path}:\n{_log_tail(lab.log_path)}"
    )


def _check_server(lab: JupyterLab) -> None:
    """Fail early, with a useful message, if the throwaway dirs hid what tests need."""
    specs = lab.api_get("api/kernelspecs")
    names = sorted(specs.get("kernelspecs", {})) if isinstance(specs, dict) else []
    if "python3" not in names:
        raise HarnessError(f"JupyterLab sees no python3 kernel spec (found {names}).")
    with urllib.request.urlopen(lab.url("lab"), timeout=30) as response:
        page = response.read().decode("utf-8", errors="replace")
    if "@jupyter-widgets/jupyterlab-manager" not in page:
        raise HarnessError(
            "JupyterLab does not load the ipywidgets labextension; "
            f"pip install ipywidgets into {sys.prefix}."
        )


def _kernel_pids(runtime_dir: Path) -> list[int]:
    # Kernels run in their own session (jupyter_client starts them so), so killing the
    # server's group misses them; they are recognised by their connection file path.
    marker = str(runtime_dir).encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if marker in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
    return pids


def _stop(process: subprocess.Popen[bytes], runtime_dir: Path) -> None:
    # SIGTERM first: the server then shuts its kernels down cleanly.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    for pid in _kernel_pids(runtime_dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_jupyter_lab(
    workdir: Path, env: Mapping[str, str] | None = None
) -> Iterator[JupyterLab]:
    """Run `python -m jupyterlab` on a free localhost port until the block ends.

    `workdir` receives the notebook root (`root/`), throwaway Jupyter dirs and the
    server log; `env` is added to the server's (and so the kernels') environment.
    """
    root = workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    _write_user_settings(workdir / "config" / "lab" / "user-settings")
    port, token = free_port(), secrets.token_hex(24)
    lab = JupyterLab(
        root_dir=root,
        base_url=f"http://127.0.0.1:{port}/",
        token=token,
        log_path=workdir / "jupyterlab.log",
        runtime_dir=workdir / "runtime",
    )
    with lab.log_path.open("wb") as log:
        process = subprocess.Popen(
            _lab_command(root, port, token),
            cwd=root,
            env=_lab_env(workdir, env or {}),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(lab, process)
        _check_server(lab)
        yield lab
    finally:
        _stop(process, lab.runtime_dir)


@contextlib.contextmanager
def chromium_page(user_data_dir: Path, executable: Path = CHROMIUM_PATH) -> Iterator[Page]:
    """Launch Debian's Chromium headless on a new, empty profile and yield one page."""
    from playwright.sync_api import sync_playwright

    user_data_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(executable),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport=VIEWPORT,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            context.close()


def write_notebook(root: Path, name: str, cells: Sequence[str]) -> Path:
    """Write an nbformat 4 notebook of code cells without outputs; return its path."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            # A named kernel spec keeps JupyterLab from asking which kernel to use.
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
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


def _dismiss_kernel_dialog(page: Page) -> bool:
    """Accept JupyterLab's kernel-selection dialog if it is showing (default kernel)."""
    dialog = page.locator(_KERNEL_DIALOG)
    if dialog.count() == 0 or not dialog.first.is_visible():
        return False
    dialog.first.locator(".jp-mod-accept").first.click()
    return True


def _kernel_status(page: Page) -> str:
    indicator = page.locator(_EXECUTION_INDICATOR)
    if indicator.count() == 0:
        return "missing"
    return indicator.first.get_attribute("data-status") or "unknown"


def _pending_cells(page: Page) -> int:
    """Count code cells queued or running: their prompt reads `[*]:`."""
    prompts = page.locator(f"{_CODE_CELL} .jp-InputArea-prompt").all_inner_texts()
    return sum("*" in prompt for prompt in prompts)


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
    page.goto(lab.url(f"lab/tree/{quote(name)}"), wait_until="domcontentloaded")
    page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {_CELL}").first.wait_for(
        state="visible", timeout=UI_TIMEOUT_MS
    )
    wait_kernel_idle(page)


def run_all_cells(page: Page, timeout_ms: float = KERNEL_TIMEOUT_MS) -> None:
    """Run every cell through the "Run > Run All Cells" menu, then wait for the kernel."""
    # Matched by label: the menu's command ids (`runmenu:...`) are not public API.
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    wait_kernel_idle(page, timeout_ms)


def cell_output(page: Page, index: int) -> Locator:
    """Return the output nodes of the notebook's cell number `index` (from 0)."""
    return page.locator(_CELL).nth(index).locator(".jp-OutputArea-output")


def screenshot(page: Page, name: str) -> Path:
    """Save a PNG of the page to tests/artifacts/<name>.png and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "page"
    path = ARTIFACTS_DIR / f"{safe}.png"
    page.screenshot(path=str(path))
    return path
