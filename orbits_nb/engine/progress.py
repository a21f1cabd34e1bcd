"""Progress of a run in a terminal: step lines and a progress bar on stderr.

Shown while a script or the CLI waits for a run (``run.wait()``, ``Workflow.run()``)
when stderr is a terminal; quiet otherwise (pipes, CI logs, notebooks) unless
``ORBITS_NB_PROGRESS=1`` asks for it (``0`` silences it everywhere). Updates are
throttled: a 1,000-step run prints a few lines per second, not one per event.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from orbits_nb.core.state import RUN_TERMINAL, RunState, StepState, short_error

if TYPE_CHECKING:
    from orbits_nb.engine.run import Run
    from orbits_nb.engine.runner import RunExecution

ENV_VAR = "ORBITS_NB_PROGRESS"
_ON = ("1", "true", "yes", "on", "always")
_OFF = ("0", "false", "no", "off", "never")
_MARKS = {"succeeded": "✓", "replayed": "↺", "failed": "✗", "cancelled": "■",
          "waiting": "…", "retrying": "↻"}
_BURST = 12  # more successes than this in one update are summed up in one line
#: Runs whose end was already printed (``Engine.close`` waits on runs again).
_summarized: weakref.WeakSet[Run] = weakref.WeakSet()


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
        self._seen: dict[str, str] = {}
        self._bar = False
        self._started = time.time()
        self._lock = threading.Lock()
        self._unsubscribe: Any = None
        self._pump: Any = None
        self.lines = 0

    def start(self) -> TerminalProgress:
        from orbits_nb.views.pump import Pump

        self._pump = Pump(self.update, interval=self.interval, name="orbits-nb-progress")
        if self.run.execution is not None and not self.run.done:
            self._unsubscribe = self.run.engine.subscribe(self._listener)
        else:
            self._pump.poll = 1.0  # executing elsewhere: look at the store now and then
        self._pump.start()
        self._pump.poke()
        return self

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
            self._clear_bar()  # the wait ended early (timeout, Ctrl-C): leave no bar

    def _snapshot(self) -> tuple[RunState, list[tuple[str, StepState, str]]]:
        execution = self.run.execution
        if execution is None:
            state = self.run.state()
            return state, [(s.key, s, s.status) for s in state.ordered_steps()]

        def copy_all() -> tuple[RunState, list[tuple[str, StepState, str]]]:
            out: list[tuple[str, StepState, str]] = []
            _collect(execution, "", out)
            return copy.copy(execution.state), out

        loop = self.run.engine.loop
        if self.run.done or not loop.is_running():
            return copy_all()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_soon_threadsafe(lambda: future.set_result(copy_all()))
        result: tuple[RunState, list[tuple[str, StepState, str]]] = future.result(10)
        return result

    def update(self) -> bool:
        """Print what changed since the last update; False once the run has ended."""
        with self._lock:
            state, steps = self._snapshot()
            lines = self._transitions(steps)
            terminal = state.status in RUN_TERMINAL
            self._clear_bar()
            for line in lines:
                self._write(line + "\n")
            if terminal:
                if "#end" not in self._seen:
                    self._seen["#end"] = state.status
                    _summarized.add(self.run)
                    self._write(self._summary(state, steps) + "\n")
            elif self.tty:
                self._write(self._bar_line(state, steps))
                self._bar = True
            self.stream.flush()
            return not terminal

    def _transitions(self, steps: list[tuple[str, StepState, str]]) -> list[str]:
        lines: list[tuple[bool, str]] = []
        for path, step, status in steps:
            if self._seen.get(path) == status or status not in _MARKS:
                continue
            self._seen[path] = status
            if status in ("succeeded", "replayed"):
                took = _seconds(step.duration) if step.finished_at else ""
                lines.append((True, f"  {_MARKS[status]} {path:<28} {took}".rstrip()))
                continue
            detail = {"failed": short_error(step.error), "waiting": "waiting",
                      "retrying": f"retrying (attempt {step.attempts}): "
                                  f"{short_error(step.error)}",
                      "cancelled": "cancelled"}.get(status, "")
            lines.append((False, f"  {_MARKS[status]} {path:<28} {detail}".rstrip()))
        done = sum(ok for ok, _ in lines)
        if done <= _BURST:
            return [line for _, line in lines]
        out = [line for ok, line in lines if not ok]
        return [f"  ✓ {done} steps done", *out]

    def _bar_line(self, state: RunState, steps: list[tuple[str, StepState, str]]) -> str:
        total = len(steps)
        done = sum(s in ("succeeded", "replayed") for _, _, s in steps)
        running = sum(s in ("running", "retrying") for _, _, s in steps)
        width = 24
        filled = int(width * done / total) if total else 0
        name = state.workflow.rsplit(":", 1)[-1]
        return (f"\r{name} [{'█' * filled}{'░' * (width - filled)}] {done}/{total} steps"
                f"{f' · {running} running' if running else ''} · "
                f"{_seconds(time.time() - (state.started_at or self._started))}")

    def _summary(self, state: RunState, steps: list[tuple[str, StepState, str]]) -> str:
        name = state.workflow.rsplit(":", 1)[-1]
        took = _seconds((state.finished_at or time.time()) - (state.started_at or
                                                               self._started))
        mark = {"succeeded": "✔", "failed": "✘", "cancelled": "■"}.get(state.status, "•")
        text = f"{mark} {name} {state.status} in {took} ({len(steps)} steps) · {state.run_id}"
        if state.error:
            text += f"\n  {short_error(state.error)}"
        return text

    def _clear_bar(self) -> None:
        if self._bar:
            self._write("\r\x1b[2K")
            self._bar = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
        except (OSError, ValueError):  # a closed terminal must not fail the run
            return
        self.lines += text.count("\n")


def _collect(execution: RunExecution, prefix: str,
             out: list[tuple[str, StepState, str]]) -> None:
    for step in execution.state.ordered_steps():
        out.append((prefix + step.key, copy.copy(step),
                    _step_status(step, execution.replayed)))
        child = execution.children.get(step.key)
        if child is not None:
            _collect(child, f"{prefix}{step.key}/", out)


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
