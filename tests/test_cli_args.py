"""Every option is checked where it enters: clear messages, exit code 2, no SQL text.

The CLI runs in real subprocesses on a real state file; the Python API on a real engine.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb._filters import since_epoch

FIXTURES = Path(__file__).parent / "notebooks"
LEAKS = ("Conversion Error", "Binder Error", "Traceback", "SELECT", "CAST(")


class Hello(ob.Action):
    def main(self) -> Any:
        return "hello"


class Greet(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("greet", Hello())


def cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.fixture
def recorded(state: Path) -> str:
    """A state file holding one succeeded run; its run id."""
    engine = ob.Engine(state)
    run = engine.start(Greet())
    run.wait(30)
    engine.close()
    return run.run_id


def assert_refused(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    for word in words:
        assert word in out.stderr, out.stderr
    for leak in LEAKS:
        assert leak not in out.stderr, out.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["runs", "--since", "garbage"], ["--since", "'garbage'", "7d"]),
    (["runs", "--since", ""], ["--since"]),
    (["runs", "--notebooks", "--since", "yesterday-ish"], ["--since", "yesterday-ish"]),
    (["runs", "--limit", "-1"], ["--limit", "'-1'"]),
    (["runs", "--limit", "0"], ["--limit", "'0'"]),
    (["runs", "--limit", "abc"], ["--limit", "'abc'"]),
    (["runs", "--limit", "2.5"], ["--limit", "'2.5'"]),
    (["runs", "--status", "exploded"], ["--status", "exploded"]),
    (["runs", "--workflow", ""], ["--workflow"]),
    (["drift-history", "--limit", "0"], ["--limit"]),
    (["drift-history", "--limit", "many"], ["--limit", "many"]),
    (["drift", "--concurrency", "0"], ["--concurrency"]),
    (["reconcile", "--concurrency", "-3"], ["--concurrency"]),
    (["scheduler", "--once", "--max-parallel", "0"], ["--max-parallel"]),
    (["scheduler", "--once", "--max-attempts", "x"], ["--max-attempts"]),
    (["scheduler", "--once", "--poll", "0"], ["--poll"]),
    (["scheduler", "--once", "--grace", "-1"], ["--grace"]),
    (["scheduler", "--once", "--poll", "nan"], ["--poll"]),
    (["show", ""], ["RUN_ID"]),
    (["demo", "--client", "Acme Corp"], ["--client", "'Acme Corp'", "lowercase"]),
    (["demo", "--region", "moon-1"], ["--region", "moon-1"]),
    (["demo", "--region", ""], ["--region"]),
    (["demo", "--account-delay", "-3"], ["--account-delay", "'-3'"]),
    (["approve", "some-run", "/"], ["STEP", "names no step"]),
    (["schedule", "crontab", "--python", "/no/such/python"], ["--python"]),
    (["accept", ""], ["KEY"]),
    (["uninstall", "x", " "], ["KEY"]),
    (["drift-history", ""], ["KEY"]),
    (["approve", "some-run", "approve", "--by", ""], ["--by"]),
])
def test_bad_options_are_refused_by_name(recorded: str, args: list[str],
                                         words: list[str]) -> None:
    assert_refused(cli(*args), *words)


@pytest.mark.parametrize(("args", "words"), [
    (["--cell-timeout", "0"], ["--cell-timeout"]),
    (["--execution-timeout", "-5"], ["--cell-timeout"]),
    (["--start-timeout", "never"], ["--start-timeout"]),
    (["--autosave-cell-every", "-1"], ["--autosave-cell-every"]),
    (["--cwd", "/no/such/folder"], ["--cwd", "/no/such/folder"]),
    (["-k", ""], ["--kernel"]),
    (["--output-dir", ""], ["--output-dir"]),
    (["--stdout-file", ""], ["stdout_file"]),
    (["-k", "no-such-kernel"], ["no-such-kernel"]),
])
def test_bad_run_options_are_refused_before_a_kernel_starts(
        state: Path, args: list[str], words: list[str]) -> None:
    assert_refused(cli("run", str(FIXTURES / "sysexit.ipynb"), *args), *words)
    assert not state.exists()


def test_schedule_options_are_checked_before_anything_is_stored(state: Path) -> None:
    notebook = str(FIXTURES / "sysexit.ipynb")
    assert_refused(cli("schedule", "add", "0 2 * * *", notebook, "--cell-timeout", "0"),
                   "--cell-timeout")
    assert_refused(cli("schedule", "add", "0 2 * * *", notebook, "--name", ""), "--name")
    assert_refused(cli("schedule", "add", "0 2 * * *", notebook, "-k", "no-such-kernel"),
                   "no-such-kernel")
    assert_refused(cli("schedule", "add", "0 2 * * *", notebook, "--tz", "Mars/Olympus"),
                   "Mars/Olympus")
    assert not state.exists()


def test_valid_filters_still_work(recorded: str) -> None:
    for args in (["--since", "7d"], ["--since", "12h"], ["--since", "2000-01-01"],
                 ["--since", "2000-01-01 08:30"], ["--since", "2000-01-01T08:30+02:00"],
                 ["--limit", "1"], ["--status", "succeeded"], ["--workflow", "Greet"]):
        out = cli("runs", *args)
        assert out.returncode == 0, (args, out.stderr)
        assert recorded in out.stdout, args
    future = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    out = cli("runs", "--since", future)
    assert out.returncode == 0
    assert recorded not in out.stdout


def test_history_checks_its_arguments_before_any_sql(recorded: str) -> None:
    bad: list[dict[str, Any]] = [
        {"since": "garbage"}, {"since": 12}, {"since": dt.timedelta(days=-1)},
        {"limit": -1}, {"limit": 0}, {"limit": "10"}, {"limit": True}, {"limit": 2.5},
        {"status": "exploded"}, {"status": 3}, {"workflow": 42}, {"workflow": ""},
    ]
    for kwargs in bad:
        with pytest.raises(ob.InvalidArgument) as caught:
            ob.history(**kwargs)
        message = str(caught.value)
        name = next(iter(kwargs))
        assert name in message, message
        assert "SELECT" not in message
        assert "Error" not in message


def test_history_binds_values_so_quotes_and_wildcards_are_literal(recorded: str) -> None:
    assert ob.history(workflow="Greet").fetchall()
    assert ob.history(workflow="Gre%").fetchall() == []
    assert ob.history(workflow="x' OR '1'='1").fetchall() == []
    assert ob.history(workflow=Greet().type_name()).fetchall()


def test_history_since_forms(recorded: str) -> None:
    now = dt.datetime.now()
    for since in ("7d", "1h", "90s", "1w", now.date(), now - dt.timedelta(hours=1),
                  dt.timedelta(minutes=5), (now - dt.timedelta(hours=1)).isoformat(),
                  dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)):
        rows = ob.history(since=since).fetchall()
        assert [r[0] for r in rows] == [recorded], since
    assert ob.history(since=now + dt.timedelta(days=1)).fetchall() == []
    assert ob.history(since="2999-01-01").fetchall() == []


def test_since_epoch_units() -> None:
    assert since_epoch("2h", now=10_000.0) == 10_000.0 - 7200
    assert since_epoch("1.5d", now=200_000.0) == 200_000.0 - 1.5 * 86400
    assert since_epoch(dt.timedelta(seconds=30), now=100.0) == 70.0
    aware = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    assert since_epoch("2026-11-01T12:00Z") == aware.timestamp()
    assert since_epoch(aware) == aware.timestamp()


def test_sql_refuses_several_statements_and_side_effects(recorded: str) -> None:
    sequence = ("SELECT last_value FROM duckdb_sequences() WHERE sequence_name = "
                "'event_seq'")
    before = ob.sql("SELECT count(*) FROM events").fetchall(), ob.sql(sequence).fetchall()
    for query in ("SELECT 1; SELECT 2", "SELECT 1; DELETE FROM events",
                  "SELECT nextval('event_seq')", "SELECT setval('event_seq', 1)"):
        with pytest.raises(ob.OrbitsError) as caught:
            ob.sql(query)
        assert "read-only" in str(caught.value)
        out = cli("sql", query)
        assert out.returncode == 2, out.stdout
        assert "read-only" in out.stderr
        assert "Traceback" not in out.stderr
    assert "2 statement(s)" in cli("sql", "SELECT 1; SELECT 2").stderr
    after = ob.sql("SELECT count(*) FROM events").fetchall(), ob.sql(sequence).fetchall()
    assert after == before
    assert cli("sql", "SELECT 1 AS one;", "--json").stdout.strip() == '{"one": 1}'


def test_version_and_python_dash_m() -> None:
    out = cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"orbits-nb {ob.__version__}"
    assert ob.__version__ == importlib.metadata.version("orbits_nb")
    module = subprocess.run([sys.executable, "-m", "orbits_nb", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert module.returncode == 0
    assert module.stdout == out.stdout
    helped = subprocess.run([sys.executable, "-m", "orbits_nb", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: orbits-nb")
