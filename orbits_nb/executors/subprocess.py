"""The subprocess executor: each call runs in a fresh Python process.

The action travels by cloudpickle (so classes defined in a notebook work too); the
reply comes back pickled. An exception that cannot be pickled comes back as a
:class:`~orbits_nb.core.errors.RemoteError` with its type, message and traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys
from pathlib import Path

from orbits_nb.core.action import Action
from orbits_nb.core.errors import InvalidArgument, RemoteError
from orbits_nb.core.masking import mask, remember_all
from orbits_nb.core.ports import Method, Outcome
from orbits_nb.engine.capture import current_sink
from orbits_nb.executors._boundary import aborted, contained, is_abort


class SubprocessExecutor:
    """Runs each ``main``/``watch`` call in a new ``python`` process.

    >>> step = self.do("build", Build(), executor=SubprocessExecutor())  # doctest: +SKIP
    """

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None, *,
                 grace: float = 5.0) -> None:
        """``grace``: seconds a cancelled call's process has to exit after SIGTERM
        before it is killed (SIGKILL)."""
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
            raise InvalidArgument(f"SubprocessExecutor(grace=...) must be a number of "
                                  f"seconds of at least 0, got {grace!r}")
        self.python = python or sys.executable
        self.env = dict(env or {})
        self.grace = float(grace)

    def describe(self) -> str:
        return "subprocess"

    def interruptible(self, action: Action, method: Method) -> bool:
        """Cancelling a call kills its process, which leaves nothing running."""
        return True

    async def call(self, action: Action, method: Method) -> Outcome:
        return await contained(self._call(action, method))

    async def _call(self, action: Action, method: Method) -> Outcome:
        import cloudpickle

        payload = cloudpickle.dumps((action, method))
        env = {**os.environ, **self.env}
        # The child must import what the parent imported by reference.
        paths = [p for p in sys.path if p and Path(p).is_dir()]
        env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *paths])
        proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "orbits_nb.executors.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        try:
            out, err = await proc.communicate(payload)
        except BaseException:
            if proc.returncode is None:
                await terminate(proc, self.grace)
            raise
        reply = pickle.loads(out) if out else None
        if reply is not None:
            remember_all(reply[-1])  # secrets the child revealed, masked from here on
        sink = current_sink.get()
        if sink is not None and err:
            sink.write("stdout", err.decode(errors="replace"))
            sink.close()
        if reply is None:
            raise RemoteError("SubprocessDied", f"the worker process exited with code "
                              f"{proc.returncode} before replying",
                              mask(err.decode(errors="replace")[-2000:]))
        if reply[0] == "ok":
            return Outcome(reply[1], reply[2])
        error: BaseException = reply[1]
        if is_abort(error):  # sent by a worker that did not convert it itself
            raise aborted(error) from None
        raise error

    def __repr__(self) -> str:
        return f"SubprocessExecutor(python={self.python!r})"


async def terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """Stop a call's process and what it started (its own process group): SIGTERM,
    then SIGKILL once ``grace`` seconds passed (at once on a second cancel)."""
    _signal(proc.pid, signal.SIGTERM)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
    finally:
        # Also whatever the call started and left behind in its group.
        _signal(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()


def _signal(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
