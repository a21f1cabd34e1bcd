"""A papermill I/O handler kept in memory, registered for one test at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class MemoryHandler:
    """A papermill I/O handler for ``mem://`` URLs that keeps every write, in order."""

    def __init__(self) -> None:
        self.writes: dict[str, list[str]] = {}
        self.reads: list[str] = []

    def read(self, path: str) -> str:
        self.reads.append(path)
        return self.writes[path][-1]

    def listdir(self, path: str) -> list[str]:
        return [p for p in self.writes if p.startswith(path)]

    def write(self, buf: str, path: str) -> None:
        self.writes.setdefault(path, []).append(buf)

    def pretty_path(self, path: str) -> str:
        return path


@contextmanager
def registered() -> Iterator[MemoryHandler]:
    """A fresh handler for ``mem://``, removed again afterwards."""
    from papermill.iorw import papermill_io

    handler = MemoryHandler()
    papermill_io.register("mem://", handler)
    try:
        yield handler
    finally:
        # papermill offers no unregister; drop ours so other tests see its usual handlers.
        papermill_io._handlers = [h for h in papermill_io._handlers if h[1] is not handler]
