"""Run a throwaway JupyterLab server for the browser tests.

The server lives in its own process group with its own config, data and runtime
dirs, so it never reads or writes the developer's Jupyter state, and everything it
started (kernels included) is ended when the `running_jupyter_lab` block exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# Generous: a cold JupyterLab plus a kernel on two busy cores takes tens of seconds.
SERVER_START_TIMEOUT_S = 120.0
SERVER_STOP_TIMEOUT_S = 20.0
_POLL_S = 0.25

# JupyterLab settings written into the throwaway user-settings dir: no news/update
# toasts covering the page, and every cell kept in the DOM so locators see them all.
_USER_SETTINGS: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


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

    def api(self, path: str, method: str = "GET") -> object:
        """Call the server's REST API, authenticated by the token; return its JSON."""
        request = urllib.request.Request(
            f"{self.base_url}{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """Shut down every kernel, so that reopening a notebook starts a fresh one."""
        sessions = self.api("api/sessions")
        for session in sessions if isinstance(sessions, list) else []:
            self.api(f"api/sessions/{session['id']}", method="DELETE")
        # Kernels started without a session (from a console, say) go too.
        kernels = self.api("api/kernels")
        for kernel in kernels if isinstance(kernels, list) else []:
            self.api(f"api/kernels/{kernel['id']}", method="DELETE")


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
            lab.api("api/status")
            return
        time.sleep(_POLL_S)
    raise HarnessError(
        f"JupyterLab did not answer /api/status within {SERVER_START_TIMEOUT_S:.0f} s; "
        f"log {lab.log_path}:\n{_log_tail(lab.log_path)}"
    )


def _check_server(lab: JupyterLab) -> None:
    """Fail early, with a useful message, if the throwaway dirs hid what tests need."""
    specs = lab.api("api/kernelspecs")
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
