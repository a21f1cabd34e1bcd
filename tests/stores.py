"""The stores every store behaviour is checked on: a DuckDB file, DuckDB in memory, and
a real PostgreSQL server started for the session (a fresh database per test).

Import the fixtures into a test module (``from stores import any_store, pg_server``)
to run its tests on every store; ``two_stores`` gives a file and a server for tests of
processes and hosts (an in-memory store cannot be shared).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import Server

from orbits_nb.core.storage import Store
from orbits_nb.store import open_store

KINDS = ("duckdb-file", "duckdb-memory", "postgres")
SHARED = ("duckdb-file", "postgres")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """One PostgreSQL server for the whole session."""
    server = Server()
    try:
        yield server
    finally:
        server.close()


class Location:
    """Where a test's store lives, and a way to open it again (as another process or
    host would)."""

    def __init__(self, kind: str, where: str) -> None:
        self.kind = kind
        self.where = where
        self.opened: list[Store] = []

    @property
    def shared(self) -> bool:
        return self.kind != "duckdb-memory"

    def open(self, **options: Any) -> Store:
        store = open_store(self.where, **options)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


def _location(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Location:
    if kind == "postgres":
        server: Server = request.getfixturevalue("pg_server")
        return Location(kind, server.database())
    if kind == "duckdb-memory":
        return Location(kind, ":memory:")
    return Location(kind, str(tmp_path / "contract" / "state.duckdb"))


@pytest.fixture(params=KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Location]:
    """This test's store location, on each kind of store in turn."""
    place = _location(request.param, tmp_path, request)
    yield place
    place.close()


@pytest.fixture(params=SHARED)
def shared_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Location]:
    """A store that several processes or hosts can open: a DuckDB file and a server."""
    place = _location(request.param, tmp_path, request)
    yield place
    place.close()


@pytest.fixture
def any_store(location: Location) -> Store:
    """A fresh store of each kind."""
    return location.open()


@pytest.fixture
def pg_location(pg_server: Server) -> Iterator[Location]:
    """A fresh database on the session's server."""
    place = Location("postgres", pg_server.database())
    yield place
    place.close()


OpenStore = Callable[..., Store]
