"""Pytest plugin: a real moto server process on loopback, per test module.

Use it with ``pytest_plugins = ["aws_server"]``: fixtures ``emulator`` (the server)
and ``aws`` (a clean organization, this process pointed at the server).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_helpers import TAKEN_EMAIL

from orbits_nb.aws.emulator import Emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One moto server per test module (a real subprocess on 127.0.0.1)."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with Emulator(taken_emails=[TAKEN_EMAIL], log_path=log) as emu:
        yield emu
    assert not emu.running


@pytest.fixture
def aws(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """A clean emulator with an organization, and this process pointed at it."""
    emulator.reset()
    for key, value in emulator.environ().items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    emulator.create_organization()
    return emulator
