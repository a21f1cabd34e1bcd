"""Child side of :class:`SubprocessExecutor`: ``python -m orbits_nb.executors.worker``."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import sys
import traceback
from typing import Any

from orbits_nb.core.errors import RemoteError
from orbits_nb.core.masking import remembered
from orbits_nb.executors._boundary import aborted, is_abort


def _portable(error: BaseException) -> BaseException:
    """The error itself if it survives pickling, else a RemoteError describing it.

    A BaseException such as ``sys.exit()`` travels as an ``Aborted`` error with its
    traceback, so the parent records a failed step instead of stopping its loop.
    """
    if is_abort(error):
        return aborted(error)
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RemoteError(f"{type(error).__module__}.{type(error).__qualname__}",
                           str(error), "".join(traceback.format_exception(error)))
    return error


def main() -> None:
    reply_stream = sys.stdout.buffer
    sys.stdout = sys.stderr  # the action's prints become the step's log
    reply: tuple[Any, ...]
    try:
        action, method = pickle.loads(sys.stdin.buffer.read())
        value = getattr(action, method)()
        if inspect.isawaitable(value):
            value = asyncio.run(_wait(value))
        reply = ("ok", value, action.bag, remembered())
        payload = pickle.dumps(reply)
    except BaseException as error:
        traceback.print_exc()
        # The secrets this process revealed go back too: the parent masks them in
        # what this process printed and raised before any of it is recorded.
        payload = pickle.dumps(("error", _portable(error), remembered()))
    reply_stream.write(payload)
    reply_stream.flush()


async def _wait(awaitable: Any) -> Any:
    return await awaitable


if __name__ == "__main__":
    main()
