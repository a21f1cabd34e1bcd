"""A command of the command line closes every engine it opened as it returns: no
engine loop, no writer (and so no lease, no open file) stays behind it (called in-process here, as a
script or a test would call ``orbits_nb.cli.main``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from polling import until

import orbits_nb as ob
from orbits_nb.cli import main
from orbits_nb.engine.engine import Engine, default_engine


class Two(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("one", Nothing())


class Nothing(ob.Action):
    def main(self) -> Any:
        return 1


_ENGINE_THREADS = ("orbits-nb-engine", "orbits-nb-writer")


def _engine_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name in _ENGINE_THREADS}


@pytest.mark.parametrize("command", [["show", "two-run"], ["cancel", "two-run"],
                                     ["runs"], ["reset", "two-run", "one"]])
def test_a_command_leaves_no_engine_open(state: Path, command: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    others = _engine_threads()  # engines of other tests in this process: not ours
    engine = Engine(state)
    try:
        assert engine.start(Two(), run_id="two-run").wait(60) == 1
    finally:
        engine.close()
    until(lambda: not _engine_threads() - others)
    before = default_engine()
    _ = before.loop  # the process's engine runs its loop now
    assert _engine_threads() - others
    main(["--state", str(state), *command])
    capsys.readouterr()
    # AssertionError if the command left them
    until(lambda: not _engine_threads() - others)
    after = default_engine()  # the closed engine was forgotten: a fresh one
    assert after is not before
    after.close()
