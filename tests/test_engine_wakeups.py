"""Results arriving from other threads wake the engine loop once per batch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from orbits_nb.engine.flight import result_of
from orbits_nb.executors._wakeups import awaited


def test_results_posted_together_wake_the_loop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.new_event_loop()
    wakes: list[Any] = []
    real = loop.call_soon_threadsafe

    def counted(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakes.append(callback)
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    futures: list[concurrent.futures.Future[int]] = [concurrent.futures.Future()
                                                     for _ in range(100)]

    async def main() -> list[int]:
        waits = [result_of(f) if i % 2 else awaited(f) for i, f in enumerate(futures)]
        # Resolved from another thread while this loop is busy: none has run yet.
        worker = threading.Thread(target=lambda: [f.set_result(i)
                                                  for i, f in enumerate(futures)])
        worker.start()
        worker.join()
        return list(await asyncio.gather(*waits))

    try:
        assert loop.run_until_complete(main()) == list(range(100))
    finally:
        loop.close()
    assert len(wakes) == 1


def test_a_cancelled_wait_cancels_a_call_not_begun() -> None:
    loop = asyncio.new_event_loop()
    future: concurrent.futures.Future[int] = concurrent.futures.Future()

    async def main() -> None:
        wait = awaited(future)
        wait.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wait

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert future.cancelled()
