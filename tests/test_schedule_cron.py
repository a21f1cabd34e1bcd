"""Cron expressions: five fields (or an @shortcut), refused otherwise before anything is
stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orbits_nb.runbooks import ScheduleError
from orbits_nb.runbooks.schedules import check_cron

NOTEBOOK = str(Path(__file__).parent / "notebooks" / "sysexit.ipynb")


@pytest.mark.parametrize(("cron", "words"), [
    ("0 0 2 * * *", ["6 field(s)", "seconds", "5 fields: minute hour day month weekday"]),
    ("0 0 2 * * * 2030", ["7 field(s)"]),
    ("0 2 * *", ["4 field(s)"]),
    ("", ["0 field(s)"]),
    ("   ", ["0 field(s)"]),
    ("61 * * * *", ["not a valid cron expression"]),
    ("0 25 * * *", ["not a valid cron expression"]),
    ("0 2 * * 8", ["not a valid cron expression"]),
    ("*/0 * * * *", ["not a valid cron expression"]),
    ("0 2 30 2 *", ["never comes due"]),
    ("@reboot", ["unknown shortcut"]),
    ("@every 5m", ["unknown shortcut"]),
    ("a b c d e", ["not a valid cron expression"]),
])
def test_bad_cron_is_refused_with_the_expected_form(cron: str, words: list[str]) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_cron(cron)
    for word in words:
        assert word in str(caught.value)
    assert "5 fields: minute hour day month weekday" in str(caught.value)


@pytest.mark.parametrize(("cron", "normal"), [
    ("0 2 * * *", "0 2 * * *"), (" 0  2 * *  1-5 ", "0 2 * * 1-5"),
    ("*/15 * * * *", "*/15 * * * *"), ("@daily", "@daily"), ("@HOURLY", "@hourly"),
    ("0 2 * * MON", "0 2 * * MON"), ("0 2 29 2 *", "0 2 29 2 *"),
])
def test_good_cron_is_kept(cron: str, normal: str) -> None:
    assert check_cron(cron) == normal


def test_cli_refuses_a_seconds_field_and_stores_nothing(state: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "schedule", "add",
                          "0 0 2 * * *", NOTEBOOK], capture_output=True, text=True,
                         timeout=120, env=os.environ.copy())
    assert out.returncode == 2
    assert "5 fields: minute hour day month weekday" in out.stderr
    assert "Traceback" not in out.stderr
    assert not state.exists()
