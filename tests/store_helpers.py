"""Real state files with data, the CLI on them, and ways to make a disk misbehave.

Running as root, chmod does not stop writes, so read-only files and folders are made
with what root cannot write through: ``chattr +i`` or a read-only bind mount; a full
disk is a real, small tmpfs. Where none of that is possible the helpers skip, saying
why (other tests prove the same case with a file size limit).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob

ROOT = os.geteuid() == 0


class Say(ob.Action):
    def main(self) -> Any:
        for i in range(int(self.args.get("lines", 3))):
            print(f"{self.step} line {i} " + "x" * 80)
        return {"step": self.step, "pad": "y" * 200}


class Steps(ob.Workflow):
    async def define(self) -> Any:
        done = [await self.do(f"s{i}", Say()) for i in range(int(self.args["n"]))]
        return len(done)


def make_state(path: Path, runs: int = 3, steps: int = 40) -> list[str]:
    """A real state file with ``runs`` finished runs; returns their ids."""
    engine = ob.Engine(path)
    try:
        ids = []
        for k in range(runs):
            run = engine.start(Steps(n=steps, k=k))
            assert run.wait(120) == steps
            ids.append(run.run_id)
    finally:
        engine.close()
    return ids


def cli(*args: str, state: Path, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "--state", str(state),
                           *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


def assert_clean_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    """A one-line orbits-nb error naming ``words``: no traceback, no raw DuckDB type."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith("orbits-nb: error: "), out.stderr
    assert "Traceback" not in out.stderr and "_duckdb" not in out.stderr, out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_blocks(path: Path, tables: tuple[str, ...] = ("events", "runs", "steps")
                 ) -> list[int]:
    """File offsets of the DuckDB blocks that hold rows of ``tables`` (the history)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
        blocks = con.execute(" UNION ".join(
            f"SELECT block_id FROM pragma_storage_info('{table}') WHERE block_id >= 0"
            for table in tables) + " ORDER BY 1").fetchall()
    finally:
        con.close()
    assert size is not None and blocks, f"{tables} hold no persistent block"
    header = 3 * 4096  # DuckDB's file header and its two database headers
    return [header + block_id * int(size[0]) for (block_id,) in blocks]


def _run(*command: str) -> bool:
    return subprocess.run(command, capture_output=True).returncode == 0


@contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    """``path`` cannot be written by this process (or its children) meanwhile."""
    if not ROOT:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    if not (shutil.which("chattr") and _run("chattr", "+i", str(path))):
        pytest.skip("as root chmod does not stop writes, and chattr +i is not supported "
                    "on this filesystem: a read-only file cannot be made here")
    try:
        assert not os.access(path, os.W_OK)
        yield
    finally:
        _run("chattr", "-i", str(path))


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """A view of ``folder`` in which nothing can be created or written."""
    if not ROOT:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    if _run("mount", "--bind", str(folder), str(view)):
        try:
            if not _run("mount", "-o", "remount,ro,bind", str(view)):
                pytest.skip("cannot remount a bind mount read-only here")
            assert not os.access(view, os.W_OK)
            yield view
        finally:
            _run("umount", "-l", str(view))
        return
    view.rmdir()
    if not (shutil.which("chattr") and _run("chattr", "+i", str(folder))):
        pytest.skip("as root chmod does not stop writes, and neither a read-only bind "
                    "mount nor chattr +i is possible here")
    try:
        yield folder
    finally:
        _run("chattr", "-i", str(folder))


class SmallDisk:
    """A real tmpfs of a few MiB that can be filled up and freed again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.filler = folder / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (1 << 20, 65536, 4096, 1):  # down to the last byte of the last page
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass  # no room for a piece this big: try smaller ones
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@contextmanager
def small_disk(folder: Path, size: str = "16m") -> Iterator[SmallDisk]:
    folder.mkdir(parents=True)
    if not ROOT or not _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                            str(folder)):
        pytest.skip("mounting a small tmpfs needs root: the full-disk case is proven "
                    "with a file size limit instead (test_file_size_limit_...)")
    try:
        yield SmallDisk(folder)
    finally:
        _run("umount", "-l", str(folder))
