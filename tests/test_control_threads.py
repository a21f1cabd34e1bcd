"""A cancelled step busy in a thread of this process: abandoned, not waited for.

Its thread cannot be stopped; the run ends cancelled at once, and what the thread
prints or logs later is recorded under its own attempt, never the next one's (nor
printed on the console), and its outcome is discarded.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import CancelledError
from typing import Any

import pytest
from polling import until

import orbits_nb as ob
from orbits_nb.engine.runner import ABANDONED_END

RELEASE = threading.Event()
BLOCKED = threading.Event()
FINISHED = threading.Event()


class Busy(ob.Action):
    def main(self) -> Any:
        if self.attempt == 1 and not RELEASE.is_set():
            print("early")
            BLOCKED.set()
            RELEASE.wait(60)
            print("late")
            logging.getLogger("busy").warning("late-log")
            print("no newline", end="")
            FINISHED.set()
            return "first result"
        print("second attempt")
        return "second result"


class OneBusyStep(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("busy", Busy())


@pytest.fixture(autouse=True)
def _events() -> None:
    for event in (RELEASE, BLOCKED, FINISHED):
        event.clear()


def lines(engine: ob.Engine, run_id: str, attempt: int) -> list[str]:
    engine.writer.flush()
    return [line.message for line in engine.store.logs(run_id, "busy")
            if line.attempt == attempt]


def test_a_cancelled_thread_is_abandoned_and_its_later_output_stays_with_it(
        engine: ob.Engine, capsys: pytest.CaptureFixture[str]) -> None:
    run = engine.start(OneBusyStep(), run_id="busy-run")
    assert BLOCKED.wait(30)
    run.cancel()
    with pytest.raises(CancelledError):
        run.wait(60)  # the thread is still blocked: the run did not wait for it
    state = run.state()
    assert state.status == "cancelled"
    busy = state.steps["busy"]
    assert (busy.status, busy.spans[-1].status, busy.abandoned) == (
        "cancelled", "abandoned", True)
    ((status, error),) = run.steps().project("status, error").fetchall()
    assert status == "abandoned" and "may still run" in error

    RELEASE.set()  # the thread goes on with no step of the run executing
    assert FINISHED.wait(30)
    until(lambda: ABANDONED_END in lines(engine, "busy-run", 1))
    assert lines(engine, "busy-run", 1) == ["early", "late", "WARNING busy: late-log",
                                            "no newline", ABANDONED_END]
    assert "late" not in capsys.readouterr().out
    assert run.state().steps["busy"].result is None  # its outcome was discarded

    again = run.retry()
    assert again.wait(60) == "second result"
    assert lines(engine, "busy-run", 2) == ["second attempt"]
    busy = again.state().steps["busy"]
    assert (busy.attempts, busy.spans[-1].status, busy.abandoned) == (2, "succeeded", False)


def test_a_thread_abandoned_while_the_next_attempt_runs_keeps_its_own_lines(
        engine: ob.Engine) -> None:
    run = engine.start(OneBusyStep(), run_id="overlap")
    assert BLOCKED.wait(30)
    run.cancel()
    with pytest.raises(CancelledError):
        run.wait(60)
    # The old thread is still blocked; release it only while the retry executes.
    again = run.retry()
    RELEASE.set()
    assert again.wait(60) == "second result"
    assert FINISHED.wait(30)
    until(lambda: "no newline" in lines(engine, "overlap", 1))
    assert lines(engine, "overlap", 2) == ["second attempt"]
    assert lines(engine, "overlap", 1)[:2] == ["early", "late"]
