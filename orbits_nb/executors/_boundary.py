"""Where user code is called: a BaseException must not escape into the event loop.

asyncio re-raises ``SystemExit`` and ``KeyboardInterrupt`` out of the loop that runs
the task, which stops the engine's loop for good; any other BaseException escapes
``except Exception`` handlers and leaves the step recorded as running. So everything
that is not an ``Exception`` (except ``asyncio.CancelledError``, which keeps its
meaning) becomes an :class:`~orbits_nb.core.errors.Aborted` error at the boundary.
In a worker thread it is converted before it reaches a future: a ``GeneratorExit``
delivered through a future is thrown into the awaiting task, and CPython then closes
the task's whole chain of coroutines instead of raising it there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from orbits_nb.core.errors import Aborted
from orbits_nb.core.state import user_traceback

T = TypeVar("T")


def is_abort(error: BaseException) -> bool:
    """Whether ``error`` would escape ``except Exception`` (and is not a cancellation)."""
    return not isinstance(error, (Exception, asyncio.CancelledError))


def type_label(error: BaseException) -> str:
    """The recorded type name of ``error`` (builtins without their module)."""
    return f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")


def aborted(error: BaseException) -> Aborted:
    """An :class:`Aborted` error describing ``error`` (its type, message, traceback)."""
    return Aborted(type_label(error), str(error), user_traceback(error))


def called(function: Callable[[], T]) -> T:
    """``function()``, turning an escaping BaseException into :class:`Aborted`."""
    try:
        return function()
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as error:
        raise aborted(error) from None


async def contained(awaitable: Awaitable[T]) -> T:
    """``await awaitable``, turning an escaping BaseException into :class:`Aborted`."""
    try:
        return await awaitable
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as error:
        raise aborted(error) from None
