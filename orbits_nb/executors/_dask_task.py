"""Worker side of :class:`~orbits_nb.executors.dask.DaskExecutor`: one call of a step.

:func:`run_call` is the function a Dask worker executes. It loads the action (sent
as cloudpickle bytes, so classes defined in a notebook travel), runs ``main`` or
``watch`` with the step's ``print`` and logging output captured exactly as in the
kernel (``orbits_nb.engine.capture``), and sends each captured line to the engine at
once as a Dask event on the executor's topic, so the step's logs move live. It never
raises: the reply says how the call ended, with the error pickled separately so
that an exception the engine cannot unpickle still comes back as a
:class:`~orbits_nb.RemoteError` with its traceback.

Only the standard library, cloudpickle and ``distributed`` (present on a worker) are
imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pickle
import threading
from collections import deque
from typing import Any

from orbits_nb._optional import needs
from orbits_nb.core.masking import mask, remembered
from orbits_nb.core.state import user_traceback
from orbits_nb.engine import capture
from orbits_nb.engine.capture import StepSink, current_sink
from orbits_nb.executors._boundary import aborted, is_abort, type_label

#: Lines a reply repeats at most (those the live events may have lost in transit).
TAIL_LINES = 5000
#: Bytes up to which a reply also travels as an event: the engine then has it without
#: the two extra round trips of gathering the task's result from the worker.
EVENT_REPLY_BYTES = 64 * 1024
#: Seconds between two looks at whether the engine cancelled the call.
CANCEL_POLL = 0.1
#: Worker task states that mean nobody wants the result any more.
_UNWANTED = ("cancelled", "released", "forgotten")
#: Settled calls a worker remembers for :func:`claim` (a token is 32 characters).
SETTLED_KEPT = 10_000


class _Calls:
    """The calls of this worker process: running, or settled (ran, or refused).

    A cancel asks every worker :func:`claim`: a call that began here says so, and a
    call that has not begun is refused, so it never begins. That answer is exact,
    unlike the start notice, which travels as an event and may arrive late.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._settled: dict[str, bool] = {}  # token -> it ran (False: refused)

    def begin(self, token: str) -> bool:
        with self._lock:
            if token in self._settled:
                return False
            self._running.add(token)
            return True

    def end(self, token: str) -> None:
        with self._lock:
            self._running.discard(token)
            self._settle(token, True)

    def claim(self, token: str) -> bool:
        with self._lock:
            if token in self._running or self._settled.get(token):
                return True
            self._settle(token, False)
            return False

    def _settle(self, token: str, ran: bool) -> None:
        self._settled[token] = ran
        while len(self._settled) > SETTLED_KEPT:
            del self._settled[next(iter(self._settled))]


_calls = _Calls()


def claim(token: str) -> bool:
    """Run on the workers by a cancel: whether the call ``token`` began on this
    worker. When it says False the call never begins here."""
    return _calls.claim(token)


class _Lines:
    """The call's captured lines: each sent as an event, the last ones kept."""

    def __init__(self, worker: Any, topic: str, token: str) -> None:
        self.worker = worker
        self.topic = topic
        self.token = token
        self.count = 0
        self.tail: deque[tuple[int, str, str]] = deque(maxlen=TAIL_LINES)
        self._lock = threading.Lock()

    def emit(self, stream: str, line: str) -> None:
        # Masked here too: the engine learns the secrets this call revealed only
        # with its reply, after these lines were sent.
        line = mask(line)
        with self._lock:
            self.count += 1
            entry = (self.count, stream, line)
            self.tail.append(entry)
        self.send({"kind": "line", "seq": entry[0], "stream": stream, "text": line})

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the reply still carries the line
            self.worker.log_event(self.topic, {"token": self.token, **message})


def _wanted(worker: Any, key: Any) -> bool:
    """Whether the scheduler still wants this task's result (a cancel releases it)."""
    state = getattr(worker, "state", None)
    tasks = getattr(state, "tasks", None)
    if tasks is None or key is None:
        return True
    task = tasks.get(key)
    return task is not None and getattr(task, "state", None) not in _UNWANTED


async def _until_done(awaitable: Any, worker: Any, key: Any) -> Any:
    """Await a coroutine step, cancelling it when the engine cancels the call."""
    work = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({work}, timeout=CANCEL_POLL)
        if done:
            return work.result()
        if not _wanted(worker, key):
            work.cancel()
            await asyncio.wait({work})
            raise asyncio.CancelledError


def _portable(error: BaseException) -> tuple[bytes | None, tuple[str, str, str]]:
    """The pickled error (None if it cannot be pickled) and its description."""
    import cloudpickle

    if is_abort(error):
        error = aborted(error)
    text = mask(user_traceback(error))
    description = (type_label(error), mask(str(error)), text)
    try:
        return cloudpickle.dumps(error), description
    except Exception:
        return None, description


def _invoke(payload: bytes, worker: Any, key: Any) -> tuple[Any, Any]:
    """Load the action and run the method; returns (value, bag)."""
    import cloudpickle

    action, method = cloudpickle.loads(payload)
    value = getattr(action, method)()
    if inspect.isawaitable(value):
        value = asyncio.run(_until_done(value, worker, key))
    return value, action.bag


def run_call(payload: bytes, token: str, topic: str, dashboard: str | None = None
             ) -> tuple[Any, ...]:
    """Execute one ``main``/``watch`` call on this worker; see the module docstring.

    The reply is ``(status, body, description, secrets, lines, count, where)``:
    ``status`` is ``"ok"`` (body: pickled ``(value, bag)``), ``"error"`` (body: the
    pickled error or None; description: type, message, traceback) or ``"cancelled"``.
    """
    with needs("dask", "a step on a Dask worker"):
        from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    where = {"worker": worker.address, "pid": os.getpid()}
    if dashboard:
        where["dashboard"] = dashboard
    if not _calls.begin(token):  # the engine cancelled it before it began
        return ("cancelled", None, None, [], [], 0, where)
    try:
        return _run(payload, token, topic, worker, key, where)
    finally:
        _calls.end(token)


def _run(payload: bytes, token: str, topic: str, worker: Any, key: Any,
         where: dict[str, Any]) -> tuple[Any, ...]:
    import cloudpickle

    lines = _Lines(worker, topic, token)
    lines.send({"kind": "start", **where})
    if not _wanted(worker, key):
        return ("cancelled", None, None, [], [], 0, where)
    sink = StepSink(lines.emit)
    context = current_sink.set(sink)
    capture.begin()
    status: str = "ok"
    description: tuple[str, str, str] | None = None
    try:
        try:
            body: bytes | None = cloudpickle.dumps(_invoke(payload, worker, key))
        except asyncio.CancelledError:
            status, body = "cancelled", None
        except BaseException as error:
            status = "error"
            body, description = _portable(error)
            sink.write("stderr", description[2])
    finally:
        sink.close()
        capture.end()
        current_sink.reset(context)
    reply = (status, body, description, remembered(), list(lines.tail), lines.count, where)
    packed = pickle.dumps(reply)
    if len(packed) <= EVENT_REPLY_BYTES:
        lines.send({"kind": "reply", "reply": packed})
    return reply


def load(body: bytes) -> Any:
    """Unpickle a reply's body on the engine's side."""
    return pickle.loads(body)
