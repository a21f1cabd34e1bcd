"""The in-kernel executor: coroutines on the engine loop, functions in threads."""

from __future__ import annotations

import asyncio
import contextvars
import inspect

from orbits_nb.core.action import Action
from orbits_nb.core.ports import Method, Outcome


class LocalExecutor:
    """Runs ``main``/``watch`` in this process (the default executor).

    ``async def`` methods run on the engine's event loop; plain functions run in the
    engine's thread pool so they never block it (nor the notebook).
    """

    def describe(self) -> str:
        return "local"

    async def call(self, action: Action, method: Method) -> Outcome:
        function = getattr(action, method)
        if inspect.iscoroutinefunction(function):
            value = await function()
        else:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()
            value = await loop.run_in_executor(None, context.run, function)
            if inspect.isawaitable(value):
                value = await value
        return Outcome(value, action.bag)

    def __repr__(self) -> str:
        return "LocalExecutor()"
