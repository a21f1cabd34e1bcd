"""Progress of a run in a terminal: step lines and a progress bar on stderr.

Shown while a script or the CLI waits for a run (``run.wait()``, ``Workflow.run()``)
when stderr is a terminal; quiet otherwise (pipes, CI logs, notebooks) unless
``ORBITS_NB_PROGRESS=1`` asks for it (``0`` silences it everywhere); without a
terminal only the step lines and the summary are printed, never a bar.

The bar is tqdm's (papermill's progress bar too): it fits the terminal's width and
keeps itself below the step lines printed meanwhile. What tqdm has no notion of stays
here: which steps changed since the last look (nested workflows as ``outer/inner``),
folding a burst of successes into one line, and the total. Updates are throttled: a
1,000-step run prints a few lines per second, not one per event.

The bar never claims completion while the run runs: the total is unknown on a first
run (and said so), or estimated from the previous run of the same workflow (and
labelled an estimate), and it stays above the steps done until the run ends.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from orbits_nb.core.state import RUN_TERMINAL, RunState, StepState, fold, short_error

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store
    from orbits_nb.engine.run import Run
    from orbits_nb.engine.runner import RunExecution

ENV_VAR = "ORBITS_NB_PROGRESS"
_ON = ("1", "true", "yes", "on", "always")
_OFF = ("0", "false", "no", "off", "never")
_MARKS = {"succeeded": "✓", "replayed": "↺", "failed": "✗", "cancelled": "■",
          "waiting": "…", "retrying": "↻"}
_BURST = 12  # more successes than this in one update are summed up in one line
_MAX_DEPTH = 8
FALLBACK_COLUMNS = 100
#: Runs whose end was already printed (``Engine.close`` waits on runs again).
_summarized: weakref.WeakSet[Run] = weakref.WeakSet()
Steps = list[tuple[str, StepState, str]]


def real_stderr() -> TextIO:
    """stderr as the terminal sees it (not the per-step capture proxy)."""
    stream: TextIO | None = getattr(sys.stderr, "original", sys.stderr) or sys.__stderr__
    return stream if stream is not None else open(os.devnull, "w")


def wanted(stream: TextIO, force: bool | None = None) -> bool:
    """Whether to show progress on ``stream`` (see the module docstring)."""
    if force is not None:
        return force
    setting = os.environ.get(ENV_VAR, "").strip().lower()
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    if "ipykernel" in sys.modules:
        return False  # a notebook shows the run monitor instead
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _step_status(step: StepState, replayed: set[str]) -> str:
    if step.status == "succeeded" and step.key in replayed:
        return "replayed"
    return step.status


class TerminalProgress:
    """Prints a run's step transitions and a progress bar to a stream."""

    def __init__(self, run: Run, stream: TextIO | None = None, *,
                 tty: bool | None = None, interval: float | None = None) -> None:
        self.run = run
        self.stream = stream or real_stderr()
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self.interval = interval or (0.1 if self.tty else 0.5)
        #: Steps the previous run of this workflow had (None: a first run).
        self.estimate: int | None = None
        self._seen: dict[str, str] = {}
        self._bar: Any = None  # a tqdm bar while one is drawn
        self._started = time.time()
        self._shown_work = 0.0
        self._lock = threading.Lock()
        self._unsubscribe: Any = None
        self._pump: Any = None
        self.lines = 0

    def start(self) -> TerminalProgress:
        from orbits_nb.views.pump import Pump

        self.estimate = estimated_steps(self.run.engine.store, self._identity())
        self._pump = Pump(self.update, interval=self.interval, name="orbits-nb-progress")
        if self.run.workflow is not None and not self.run.done:
            # Executing in this process (its execution may not exist yet): follow the
            # engine's notifications rather than polling the store.
            self._unsubscribe = self.run.engine.subscribe(self._listener)
        else:
            self._pump.poll = 1.0  # executing elsewhere: look at the store now and then
        self._pump.start()
        self._pump.poke()
        return self

    def _identity(self) -> RunState:
        """The run's state, with its workflow's name even before the run is recorded."""
        execution = self.run.execution
        state = self.run.state() if execution is None or execution.released else copy.copy(
            execution.state)
        if not state.workflow and self.run.workflow is not None:
            state.workflow = self.run.workflow.type_name()
        return state

    def _listener(self, execution: RunExecution) -> None:
        while execution.parent is not None:
            execution = execution.parent
        if execution.run_id == self.run.run_id and self._pump is not None:
            self._pump.poke()

    def close(self) -> None:
        if self._unsubscribe is not None:
            with contextlib.suppress(ValueError):
                self._unsubscribe()
            self._unsubscribe = None
        if self._pump is not None:
            self._pump.stop()
        self.update()
        with self._lock:
            self._close_bar()  # the wait ended early (timeout, Ctrl-C): leave no bar

    def _snapshot(self) -> tuple[RunState, Steps]:
        execution = self.run.execution
        if execution is None or execution.released:
            state = self.run.state()
            stored: Steps = []
            _collect_stored(self.run, state, execution.replayed if execution else set(), "",
                            stored)
            return state, stored

        def copy_all() -> tuple[RunState, Steps]:
            out: Steps = []
            _collect(execution, "", out)
            return copy.copy(execution.state), out

        if self.run.done:
            return copy_all()
        from orbits_nb.views.snapshot import on_engine_loop

        return on_engine_loop(self.run.engine, copy_all)

    def update(self) -> bool:
        """Print what changed since the last update; False once the run has ended."""
        with self._lock:
            state, steps = self._snapshot()
            terminal = state.status in RUN_TERMINAL
            for line in self._transitions(steps):
                self._print(line)
            if terminal:
                self._close_bar()
                if "#end" not in self._seen:
                    self._seen["#end"] = state.status
                    _summarized.add(self.run)
                    self._print(self._summary(state, steps))
            elif self.tty:
                self._draw(state, steps)
            with contextlib.suppress(OSError, ValueError):
                self.stream.flush()
            return not terminal

    def _transitions(self, steps: Steps) -> list[str]:
        lines: list[tuple[bool, str]] = []
        for path, step, status in steps:
            if self._seen.get(path) == status or status not in _MARKS:
                continue
            self._seen[path] = status
            if status in ("succeeded", "replayed"):
                took = _seconds(step.duration) if step.finished_at else ""
                if status == "replayed":  # the mark alone says nothing to a reader
                    took = f"replayed ({took} recorded)" if took else "replayed"
                lines.append((True, f"  {_MARKS[status]} {path:<28} {took}".rstrip()))
                continue
            detail = {"failed": f"failed: {short_error(step.error)}", "waiting": "waiting",
                      "retrying": f"retrying (attempt {step.attempts}): "
                                  f"{short_error(step.error)}",
                      "cancelled": "cancelled"}.get(status, "")
            lines.append((False, f"  {_MARKS[status]} {path:<28} {detail}".rstrip()))
        done = sum(ok for ok, _ in lines)
        if done <= _BURST:
            return [line for _, line in lines]
        out = [line for ok, line in lines if not ok]
        return [f"  ✓ {done} steps done", *out]

    def _draw(self, state: RunState, steps: Steps) -> None:
        """Redraw the bar: steps done against the (estimated) total, active steps."""
        done = sum(s in ("succeeded", "replayed") for _, _, s in steps)
        running = sum(s in ("running", "retrying") for _, _, s in steps)
        total = bar_total(done, len(steps), self.estimate)
        bar = self._bar if self._bar is not None else self._open_bar()
        if total is None:
            counted = f"{done} steps done · total unknown (first run)"
        else:
            counted = f"{done}/{total} steps (estimate from the previous run)"
        active = f" · {running} running" if running else ""
        elapsed = _seconds(self._work(state))
        bar.bar_format = ("{desc} |{bar:20}| {info}" if total is not None
                          else "{desc} {info}")
        bar.total, bar.n = total, done
        bar.info = f"{counted}{active} · {elapsed}"
        bar.refresh()

    def _open_bar(self) -> Any:
        # Follow the terminal's width; one that reports none (a bare pty, a stream
        # that only claims to be a terminal) gets a fixed one, as tqdm would draw
        # nothing at width 0.
        sized = _columns(self.stream) is not None
        name = self._identity().workflow.rsplit(":", 1)[-1]
        self._bar = _bar_class()(file=self.stream, desc=name, leave=False, dynamic_ncols=sized,
                                 ncols=None if sized else FALLBACK_COLUMNS, mininterval=0,
                                 bar_format="{desc} {info}", disable=False)
        return self._bar

    def _close_bar(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()  # leave=False: the bar's line is cleared

    def _work(self, state: RunState) -> float:
        """Seconds of work over every execution (a replay adds only its own time),
        never less than shown before (the timer does not go back)."""
        work = state.duration
        if work is None:
            work = (state.finished_at or time.time()) - (state.started_at or self._started)
        self._shown_work = max(work, self._shown_work)
        return self._shown_work

    def _summary(self, state: RunState, steps: Steps) -> str:
        name = state.workflow.rsplit(":", 1)[-1]
        took = _seconds(self._work(state))
        mark = {"succeeded": "✔", "failed": "✘", "cancelled": "■"}.get(state.status, "•")
        text = f"{mark} {name} {state.status} in {took} ({len(steps)} steps) · {state.run_id}"
        if state.error:
            text += f"\n  {short_error(state.error)}"
        return text

    def _print(self, line: str) -> None:
        """A line above the bar (tqdm clears and redraws it around the line)."""
        try:
            if self._bar is not None:
                self._bar.write(line, file=self.stream)
            else:
                self.stream.write(line + "\n")
        except (OSError, ValueError):  # a closed terminal must not fail the run
            return
        self.lines += line.count("\n") + 1


def bar_total(done: int, known: int, estimate: int | None) -> int | None:
    """The bar's total: None when unknown, else never reached while the run runs.

    >>> bar_total(3, 4, None), bar_total(3, 4, 10), bar_total(10, 10, 10)
    (None, 10, 11)
    """
    if estimate is None:
        return None
    return max(estimate, known, done + 1)


def estimated_steps(store: Store, state: RunState) -> int | None:
    """How many steps (nested ones included) the previous run of this workflow had."""
    from orbits_nb.views.snapshot import previous_run

    try:
        previous = previous_run(store, state)
        return None if previous is None else _count_steps(store, previous, 0)
    except Exception:  # only a display hint: never let it fail the wait
        return None


def _count_steps(store: Store, state: RunState, depth: int) -> int:
    count = 0
    for step in state.ordered_steps():
        count += 1
        if step.child_run_id and depth < _MAX_DEPTH:
            events = store.load_run(step.child_run_id)
            if events:
                count += _count_steps(store, fold(step.child_run_id, events), depth + 1)
    return count


def _columns(stream: TextIO) -> int | None:
    """The terminal's width, or None when the stream has no sized terminal."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None
    return columns or None


@functools.cache
def _bar_class() -> Any:
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc]  # tqdm ships no type information
        """tqdm with one more field for ``bar_format`` (``{info}``), no monitor thread."""

        monitor_interval = 0
        info = ""

        @property
        def format_dict(self) -> dict[str, Any]:
            values: dict[str, Any] = super().format_dict
            values["info"] = self.info
            return values

    return Bar


def _collect(execution: RunExecution, prefix: str, out: Steps) -> None:
    for step in execution.state.ordered_steps():
        out.append((prefix + step.key, copy.copy(step),
                    _step_status(step, execution.replayed)))
        child = execution.children.get(step.key)
        if child is not None:
            _collect(child, f"{prefix}{step.key}/", out)


def _collect_stored(run: Run, state: RunState, replayed: set[str], prefix: str,
                    out: Steps, depth: int = 0) -> None:
    """The steps of a run not executing here, nested runs included, from the store."""
    for step in state.ordered_steps():
        out.append((prefix + step.key, step, _step_status(step, replayed)))
        if step.child_run_id and depth < 8:
            child = fold(step.child_run_id, run.engine.store.load_run(step.child_run_id))
            _collect_stored(run, child, set(), f"{prefix}{step.key}/", out, depth + 1)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


@contextlib.contextmanager
def shown_while_waiting(run: Run, stream: TextIO | None = None,
                        force: bool | None = None) -> Iterator[TerminalProgress | None]:
    """Show ``run``'s progress on stderr for the duration of the block, if wanted."""
    target = stream or real_stderr()
    if not wanted(target, force) or run in _summarized:
        yield None
        return
    progress = TerminalProgress(run, target).start()
    try:
        yield progress
    finally:
        progress.close()
