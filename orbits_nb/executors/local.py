"""The in-kernel executor: coroutines on the engine loop, functions in threads."""

from __future__ import annotations

import contextvars
import inspect
import threading
from typing import Any

from orbits_nb.core.action import Action
from orbits_nb.core.ports import Method, Outcome
from orbits_nb.engine.capture import in_thread
from orbits_nb.executors._boundary import contained
from orbits_nb.executors._threads import DaemonThreads
from orbits_nb.executors._wakeups import awaited

_creating = threading.Lock()


class LocalExecutor:
    """Runs ``main``/``watch`` in this process (the default executor).

    ``async def`` methods run on the engine's event loop; plain functions run in
    daemon worker threads (at most ``max_threads`` at once) so they never block the
    loop (nor the notebook), and a call abandoned after its timeout never keeps the
    interpreter from exiting. A BaseException such as ``sys.exit()`` fails the step
    (:class:`~orbits_nb.core.errors.Aborted`) instead of stopping the engine.
    """

    #: Class-level defaults, so a subclass need not call ``super().__init__()``.
    max_threads: int = 64
    _threads: DaemonThreads | None = None

    def __init__(self, max_threads: int = 64) -> None:
        self.max_threads = max_threads

    def describe(self) -> str:
        return "local"

    def interruptible(self, action: Action, method: Method) -> bool:
        """A coroutine can be cancelled at its next ``await``; a thread cannot."""
        return inspect.iscoroutinefunction(getattr(action, method))

    def abandons(self, action: Action, method: Method) -> bool:
        """A cancelled call in a thread is left to finish on its own (nothing can stop
        it): its step ends cancelled at once, its output still lands in its attempt's
        logs, its outcome is discarded."""
        return not self.interruptible(action, method)

    async def call(self, action: Action, method: Method) -> Outcome:
        function = getattr(action, method)
        if inspect.iscoroutinefunction(function):
            value = await contained(function())
        else:
            # The step's context (its log sink) travels into the thread.
            context = contextvars.copy_context()
            value = await awaited(self.threads().submit(context.run, in_thread, function))
            if inspect.isawaitable(value):
                value = await value
        return Outcome(value, action.bag)

    def threads(self) -> DaemonThreads:
        """The worker threads of this executor (started on first use)."""
        threads = self._threads
        if threads is None:
            with _creating:
                if self._threads is None:
                    self._threads = DaemonThreads(self.max_threads)
                threads = self._threads
        return threads

    def __getstate__(self) -> dict[str, Any]:
        # The threads stay behind when an action travels to another process.
        state = dict(self.__dict__)
        state.pop("_threads", None)
        return state

    def __repr__(self) -> str:
        return "LocalExecutor()"
