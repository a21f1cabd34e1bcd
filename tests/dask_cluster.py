"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on
127.0.0.1, started and stopped by the test that needs them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `dask scheduler` / `dask worker` of this interpreter's environment.
_CLI = Path(sys.executable).parent / "dask"
DASK = [str(_CLI), "scheduler"] if _CLI.exists() else [
    sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [str(_CLI), "worker"] if _CLI.exists() else [
    sys.executable, "-m", "distributed.cli.dask_worker"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The workers import orbits_nb and the test modules as the tests do.
    paths = [str(ROOT), str(ROOT / "tests"), *[p for p in sys.path if p and Path(p).is_dir()]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths),
            "DASK_DISTRIBUTED__WORKER__DAEMON": "False", **(extra or {})}


class Cluster:
    """A scheduler and ``workers`` worker processes (each with its nanny)."""

    def __init__(self, log_dir: Path, workers: int = 2, nthreads: int = 2,
                 resources: str | None = None, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.nthreads = nthreads
        self.resources = resources
        self.env = _env(env)
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.start_scheduler()
        for _ in range(workers):
            self.add_worker()
        self.wait_for_workers(workers)

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (kept by the child)
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                cwd=str(self.log_dir), start_new_session=True)

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn([*DASK, "--host", "127.0.0.1", "--port", str(self.port),
                                      "--dashboard-address", f"127.0.0.1:{free_port()}"],
                                     "scheduler")

    def add_worker(self) -> None:
        args = [*WORKER, self.address, "--nthreads", str(self.nthreads), "--host",
                "127.0.0.1", "--no-dashboard", "--name", f"w{len(self.workers) + 1}"]
        if self.resources:
            args += ["--resources", self.resources]
        self.workers.append(self._spawn(args, f"worker{len(self.workers) + 1}"))

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=60, set_as_default=False)

    def wait_for_workers(self, count: int) -> None:
        client = self.client()
        try:
            client.wait_for_workers(count, timeout=120)
        finally:
            client.close()

    def worker_info(self) -> dict[str, dict[str, Any]]:
        """Address -> the scheduler's record of each connected worker (with its pid)."""
        client = self.client()
        try:
            workers: dict[str, dict[str, Any]] = client.scheduler_info()["workers"]
            pids = client.run(os.getpid)
            for address, info in workers.items():
                info["pid"] = pids.get(address)
            return workers
        finally:
            client.close()

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait()

    def stop_workers(self) -> None:
        for proc in self.workers:
            _stop(proc)
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        if self.scheduler is not None and self.scheduler.poll() is None:
            _stop(self.scheduler)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_exited(pid: int, seconds: float = 60.0) -> bool:
    """Whether process ``pid`` is gone within ``seconds`` (not a timed assertion: a
    helper that waits for an event, failing the test only if it never happens)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
