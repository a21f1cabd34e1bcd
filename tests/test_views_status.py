"""The state -> view mapping of a run, without a kernel: status, line, counts, buttons.

Every situation a monitor can meet is built as plain data (a RunState and the facts a
snapshot adds) and mapped; then each situation is checked against the rules that
make a view self-consistent (no "press Retry" with Retry disabled, no Cancel when
nothing executes, counts that add up, ...).
"""

from __future__ import annotations

from typing import Any

import pytest

from orbits_nb.core.state import Event, RunState, StepState
from orbits_nb.views import model
from orbits_nb.views.snapshot import as_reset, fold_resets
from orbits_nb.views.status import (
    ELSEWHERE,
    GONE,
    HERE,
    SETTLED,
    RunView,
    controls,
    reset_target,
    run_status,
)

OWNER = {"host": "build-7", "pid": 4242}


def steps(*pairs: tuple[str, str]) -> dict[str, StepState]:
    return {key: StepState(key, name=key, pos=pos, action=f"m:{key.title()}", status=st,
                           started_at=100.0 + pos, finished_at=None if st in (
                               "running", "waiting", "retrying", "pending") else 101.0 + pos)
            for pos, (key, st) in enumerate(pairs)}


def state(status: str, *pairs: tuple[str, str], error: str = "") -> RunState:
    out = RunState("r-1", workflow="m:Deploy", status=status, started_at=100.0,
                   finished_at=None if status in ("running", "pending") else 110.0,
                   owner=dict(OWNER), executions=1, steps=steps(*pairs))
    if error:
        out.error = {"type": "StepFailed", "message": error}
    return out


def reset_view(status: str, *pairs: tuple[str, str], since: str) -> RunView:
    """A run reset from ``since``: that step and the later ones discarded."""
    recorded = state(status, *pairs)
    cut = recorded.steps[since].pos
    discarded = [s for s in recorded.ordered_steps() if s.pos >= cut]
    kept = RunState(recorded.run_id, workflow=recorded.workflow, status=status,
                    steps={k: s for k, s in recorded.steps.items() if s.pos < cut})
    return RunView(as_reset(kept, discarded), recorded_status=status, reset_from=since,
                   discarded=tuple(s.key for s in discarded))


def situations() -> dict[str, RunView]:
    ok = (("git", "succeeded"), ("aws", "succeeded"), ("iac", "succeeded"))
    return {
        "running here": RunView(state("running", ("git", "succeeded"), ("aws", "running")),
                                recorded_status="running", where=HERE),
        "cancelling here": RunView(state("running", ("git", "running")),
                                   recorded_status="running", where=HERE,
                                   cancel_requested=True),
        "retry starting here": RunView(
            as_reset(state("failed", ("git", "succeeded"), ("iac", "failed")), []),
            recorded_status="failed", where=HERE),
        "running elsewhere": RunView(state("running", ("git", "succeeded"), ("aws", "waiting")),
                                     recorded_status="running", where=ELSEWHERE),
        "owner gone": RunView(state("running", ("git", "succeeded"), ("aws", "pending")),
                              recorded_status="running", where=GONE),
        "succeeded": RunView(state("succeeded", *ok), recorded_status="succeeded"),
        "failed": RunView(state("failed", ("git", "succeeded"), ("iac", "failed"),
                                ("notify", "succeeded"), error="step 'iac' failed"),
                          recorded_status="failed"),
        "cancelled": RunView(state("cancelled", ("git", "succeeded"), ("aws", "cancelled")),
                             recorded_status="cancelled"),
        "reset after success": reset_view("succeeded", *ok, since="aws"),
        "reset after failure": reset_view("failed", ("git", "succeeded"), ("iac", "failed"),
                                          ("notify", "succeeded"), since="iac"),
    }


EXPECTED = {
    # situation: (status shown, words in the line, enabled buttons, done/total)
    "running here": ("running", "", {"cancel"}, (1, 2)),
    "cancelling here": ("running", "cancelling", set(), (0, 1)),
    "retry starting here": ("pending", "starting", {"cancel"}, (1, 2)),
    "running elsewhere": ("running", "executing in pid 4242 on build-7", {"cancel"},
                          (1, 2)),
    "owner gone": ("interrupted", "pid 4242 on build-7) is gone: press Retry", {"retry"},
                   (1, 2)),
    "succeeded": ("succeeded", "", {"reset"}, (3, 3)),
    "failed": ("failed", "", {"retry", "reset"}, (2, 3)),
    "cancelled": ("cancelled", "", {"retry", "reset"}, (1, 2)),
    "reset after success": ("reset", "will re-run from aws: press Retry", {"retry", "reset"},
                            (1, 3)),
    "reset after failure": ("reset", "will re-run from iac: press Retry", {"retry", "reset"},
                            (1, 3)),
}


def mapped(view: RunView, select: str = "git") -> tuple[dict[str, Any], dict[str, Any]]:
    head = model.header(view)
    out = controls(head, reset_target(view, select))
    assert out.pop("busy") == ""
    return head, out


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_situation_maps_to_its_status_line_buttons_and_counts(name: str) -> None:
    shown, words, enabled, (done, total) = EXPECTED[name]
    head, buttons = mapped(situations()[name])
    assert head["status"] == shown
    assert words in head["note"]
    if not words:
        assert head["note"] == ""
    assert {k for k, b in buttons.items() if b["enabled"]} == enabled
    assert (head["done"], head["total"]) == (done, total)
    if head["terminal"]:
        assert model.progress_text(head).startswith(f"{done}/{total} steps done")
    else:  # it can still add steps: never a total it could reach
        assert f"{done}/{total} steps done" not in model.progress_text(head)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_no_situation_contradicts_itself(name: str) -> None:
    view = situations()[name]
    head, buttons = mapped(view)
    status, line = head["status"], head["note"]
    counts: dict[str, int] = head["counts"]
    active = sum(counts.get(s, 0) for s in ("running", "waiting", "retrying"))
    # What the line asks for is possible.
    if "press Retry" in line:
        assert buttons["retry"]["enabled"]
    # Retry executes the run again: only when nothing executes it and there is work.
    assert buttons["retry"]["enabled"] == (status in ("failed", "cancelled", "reset",
                                                      "interrupted"))
    if buttons["retry"]["enabled"]:
        assert head["where"] not in (HERE, ELSEWHERE)
    # Cancel acts on an execution in this kernel or in another live process.
    if buttons["cancel"]["enabled"]:
        assert head["where"] in (HERE, ELSEWHERE) and status not in SETTLED
    # Reset needs an ended run and a recorded step.
    if buttons["reset"]["enabled"]:
        assert status in SETTLED and head["where"] != HERE
    # A run nothing executes shows no step as in progress, and is drawn without motion.
    if head["where"] != HERE and head["where"] != ELSEWHERE:
        assert active == 0
    assert head["terminal"] == (status in SETTLED and head["where"] != HERE)
    if head["terminal"]:
        assert not buttons["cancel"]["enabled"]
    # The counts add up, and "done" counts what succeeded.
    assert sum(counts.values()) == head["total"] == len(model.rows(view))
    assert head["done"] == counts.get("succeeded", 0) + counts.get("replayed", 0)
    # A disabled button says why (it is also the kernel's answer if pressed).
    for button in buttons.values():
        assert button["label"]
        if not button["enabled"]:
            assert "r-1" in button["title"] or "select a step" in button["title"]
    # An old error is not shown for a run that will run again.
    if status in ("reset", "pending"):
        assert head["error"] == ""


def test_after_a_reset_the_discarded_steps_are_pending_and_the_diagram_has_no_end() -> None:
    view = situations()["reset after failure"]
    table = {row["step"]: row["status"] for row in model.rows(view)}
    assert table == {"git": "succeeded", "iac": "pending", "notify": "pending"}
    head = model.header(view)
    assert head["counts"] == {"succeeded": 1, "pending": 2}
    assert model.progress_text(head) == "1/3 steps done · 2 pending"  # no stale clock
    assert run_status(view) == "reset"
    assert view.state.status == "pending"  # drawn as its next start will find it
    from orbits_nb.core.dot import END, to_dot

    dot = to_dot(view)
    assert END not in dot
    assert '"iac" [label="iac\\nIac · pending"' in dot
    # The discarded steps have nothing left to discard; the kept one can reset.
    assert reset_target(view, "iac") == ""
    assert reset_target(view, "git") == "git"
    assert controls(head, "")["reset"]["enabled"] is False
    assert "select a step that ran" in controls(head, "")["reset"]["title"]


def events_of(*kinds: tuple[str, str | None, dict[str, Any]]) -> list[Event]:
    return [Event("r-1", kind, step, 1 if step else None, data, ts=float(i), seq=i)
            for i, (kind, step, data) in enumerate(kinds)]


def ran(key: str, pos: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [("step.started", key, {"action": f"m:{key}", "name": key, "pos": pos}),
            ("step.succeeded", key, {"result": pos})]


def test_resets_accumulate_until_the_run_starts_again() -> None:
    history = [("run.created", None, {"workflow": "m:Deploy"}), ("run.started", None, {}),
               *ran("a", 0), *ran("b", 1), *ran("c", 2), ("run.succeeded", None, {}),
               ("run.reset", None, {"steps": ["c"], "from": "c"}),
               ("run.reset", None, {"steps": ["b"], "from": "b"})]
    state, discarded, since = fold_resets("r-1", events_of(*history))
    assert (state.status, state.reset_from) == ("pending", "b")  # it will execute again
    assert list(state.steps) == ["a"]
    assert [s.key for s in discarded] == ["b", "c"]
    assert since == "b"
    shown = as_reset(state, discarded)
    assert [(s.key, s.status) for s in shown.ordered_steps()] == [
        ("a", "succeeded"), ("b", "pending"), ("c", "pending")]
    assert shown.steps["b"].result is None and shown.steps["b"].started_at is None
    assert list(state.steps) == ["a"]  # the folded state itself is left alone

    again = [*history, ("run.started", None, {}), *ran("b", 1)]
    state, discarded, since = fold_resets("r-1", events_of(*again))
    assert (discarded, since) == ([], "")
    assert list(state.steps) == ["a", "b"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_blocked_kernel_disables_every_button_and_says_why(name: str) -> None:
    view = situations()[name]
    head = model.header(view)
    out = controls(head, reset_target(view, "git"), blocked=True)
    assert "a cell is blocking this kernel" in out["busy"]
    assert "orbits-nb approve r-1 STEP" in out["busy"]
    for button in ("retry", "cancel", "reset"):
        assert out[button]["enabled"] is False
    free = controls(head, reset_target(view, "git"))
    for button in ("retry", "cancel", "reset"):
        if free[button]["enabled"]:
            assert out[button]["title"] == out["busy"]


def test_the_loop_probe_tells_a_blocked_loop_from_an_awaiting_one() -> None:
    import asyncio
    import threading

    from polling import until

    from orbits_nb.views.probe import LoopProbe

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    woken, release = threading.Event(), threading.Event()

    def drain() -> None:
        """Wait until the loop has run every callback queued so far."""
        done = threading.Event()
        loop.call_soon_threadsafe(done.set)
        until(done.is_set)

    try:
        assert thread.ident is not None
        probe = LoopProbe(loop, thread=thread.ident, after=0.2, wake=woken.set)
        assert probe.blocked() is False  # sends the first probe
        drain()
        assert probe.blocked() is False

        # A cell awaiting something (await run) leaves the loop free: not blocked.
        waiting = asyncio.run_coroutine_threadsafe(asyncio.sleep(2), loop)
        probe.blocked()
        drain()
        assert probe.blocked() is False
        waiting.cancel()

        # A cell blocked in a call (run.wait()) stops the loop: blocked, then freed.
        loop.call_soon_threadsafe(release.wait)
        probe.blocked()
        until(probe.blocked)
        assert not woken.is_set()
        release.set()
        until(woken.is_set)  # the loop answered again, and said so
        assert probe.blocked() is False
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
