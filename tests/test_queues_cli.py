"""``orbits-nb queue add|list|remove`` and the worker's argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbits_nb.cli import main
from orbits_nb.core.rows import QueuedRun
from orbits_nb.store import open_store


def test_add_list_remove(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue", "add", "deploys", "--concurrency", "4", "--per-key", "1"]) == 0
    assert "queue deploys (concurrency 4, per key 1)" in capsys.readouterr().out
    store = open_store(state)
    store.enqueue(QueuedRun("r1", "deploys", "acme", submitted_at=1.0))
    store.close()
    assert main(["queue", "list", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["queue"], row["depth"], row["running"], row["concurrency"],
            row["per_key"]) == ("deploys", 1, 0, 4, 1)
    assert row["oldest_waiting_s"] > 0
    assert main(["queue", "remove", "deploys"]) == 2
    err = capsys.readouterr().err
    assert "still holds 1 run" in err and "--force" in err and "Traceback" not in err
    assert main(["queue", "remove", "deploys", "--force"]) == 0
    assert "1 queued run(s) dropped" in capsys.readouterr().out
    assert main(["queue", "list"]) == 0
    assert "no queues" in capsys.readouterr().out


def test_list_without_a_state_file_creates_nothing(state: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue", "list"]) == 0
    assert "no state file" in capsys.readouterr().err
    assert not state.exists()


@pytest.mark.parametrize("argv", [["queue", "add", "bad name"],
                                  ["queue", "add", "q", "--concurrency", "0"],
                                  ["worker", "--concurrency", "-1"],
                                  ["worker", "--queue", "no spaces allowed", "--once"],
                                  ["worker", "--lease-timeout", "soon"]])
def test_bad_values_are_refused_where_they_enter(argv: list[str], state: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert not state.exists()


def _code(argv: list[str]) -> int:
    """The exit code, whether argparse exits or main() returns it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
