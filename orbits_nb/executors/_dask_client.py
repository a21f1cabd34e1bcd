"""Engine side of the Dask executor: the client, the local cluster, the live lines.

One :class:`Connection` per :class:`~orbits_nb.executors.dask.DaskExecutor` (shared
by its :meth:`~orbits_nb.executors.dask.DaskExecutor.options` copies). It makes the
``distributed.Client`` on first use (in a thread: connecting blocks), makes it again
when its scheduler went away and came back, and listens on one Dask event topic for
the lines and start notices that the calls on the workers send (see ``_dask_task``).
Each call registers a :class:`Route` under its token; the route writes its lines to
the step's sink in order and notes which workers ran the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import threading
import uuid
from collections.abc import Callable
from typing import Any

from orbits_nb._optional import needs
from orbits_nb.engine.capture import StepSink

#: Seconds to wait for a scheduler when connecting.
CONNECT_TIMEOUT = 10.0


class Route:
    """Where the events of one call go: its step's sink, in order, once each."""

    def __init__(self, sink: StepSink | None, loop: asyncio.AbstractEventLoop) -> None:
        self.sink = sink
        self.loop = loop
        #: The call's reply, when it came as an event (before the task's result).
        self.replied: asyncio.Future[tuple[Any, ...]] = loop.create_future()
        self.written = 0
        self.early: dict[int, tuple[str, str]] = {}
        self.workers: list[str] = []
        self.started = threading.Event()
        self._lock = threading.Lock()

    def message(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "start":
            with self._lock:
                worker = str(message.get("worker", ""))
                if not self.workers or self.workers[-1] != worker:
                    self.workers.append(worker)
            self.started.set()
        elif kind == "line":
            self._line(int(message["seq"]), str(message["stream"]), str(message["text"]))
        elif kind == "reply" and isinstance(message.get("reply"), bytes):
            reply = pickle.loads(message["reply"])
            if not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self._replied, reply)

    def _replied(self, reply: tuple[Any, ...]) -> None:
        if not self.replied.done():
            self.replied.set_result(reply)

    def _line(self, seq: int, stream: str, text: str) -> None:
        with self._lock:
            if seq <= self.written:
                return
            self.early[seq] = (stream, text)
            ready = []
            while self.written + 1 in self.early:
                self.written += 1
                ready.append(self.early.pop(self.written))
            # Written under the lock: two event batches must not interleave lines.
            if self.sink is not None:
                for line_stream, line in ready:
                    self.sink.record(line_stream, line)

    def finish(self, lines: list[tuple[int, str, str]], count: int) -> None:
        """The reply's copy of the last lines: write those the events did not bring."""
        with self._lock:
            first_kept = lines[0][0] if lines else count + 1
            lost = max(0, min(first_kept - 1, count) - self.written)
            if lost and self.sink is not None:
                self.sink.record("stderr", f"orbits_nb: {lost} line(s) of this step's "
                                 "output were lost on the way from the Dask worker")
            self.written = max(self.written, first_kept - 1)
            self.early.clear()
        for seq, stream, text in lines:
            self._line(seq, stream, text)


class Connection:
    """The Dask client of an executor: given, to an address, or to a local cluster."""

    def __init__(self, address: str | None, client: Any, cluster: dict[str, Any]) -> None:
        self.address = address
        self.given = client
        self.cluster_options = cluster
        self.topic = f"orbits-nb-{uuid.uuid4().hex[:12]}"
        self.routes: dict[str, Route] = {}
        self._client: Any = client
        self._cluster: Any = None
        self._subscribed: int | None = None
        self._lock = threading.Lock()

    # -- the client ---------------------------------------------------------------
    def client(self, failed: Callable[[str], Exception]) -> Any:
        """The usable client (blocking: call it in a thread). ``failed(reason)`` makes
        the error raised when there is none."""
        with self._lock:
            client = self._client
            if client is None or client.status not in ("running", "connecting"):
                client = self._client = self._connect(client, failed)
            elif client.status == "connecting" and self.given is None:
                # Its scheduler went away: a new client waits for it, a bounded time.
                self._quiet_close(client)
                client = self._client = self._connect(None, failed)
            self._subscribe(client)
            return client

    def current(self) -> Any:
        """The client as it is now (None before the first call), without connecting."""
        return self._client

    def _connect(self, old: Any, failed: Callable[[str], Exception]) -> Any:
        if self.given is not None:
            raise failed("the Dask client given to DaskExecutor(client=...) is closed; "
                         "give it a connected client")
        if old is not None:
            self._quiet_close(old)
        with needs("dask", "DaskExecutor"):
            from distributed import Client

        address = self.address or self._local_cluster(failed)
        try:
            return Client(address, timeout=CONNECT_TIMEOUT,  # type: ignore[no-untyped-call]
                          set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise failed(f"cannot reach the Dask scheduler at {address} ({err}); start it "
                         "(`dask scheduler`) or fix the address") from None

    def _local_cluster(self, failed: Callable[[str], Exception]) -> str:
        if self._cluster is None or self._cluster.status.name in ("closed", "closing"):
            with needs("dask", "DaskExecutor()'s local cluster"):
                from distributed import LocalCluster

            options = {"processes": True, "dashboard_address": ":0", **self.cluster_options}
            try:
                self._cluster = LocalCluster(**options)  # type: ignore[no-untyped-call]
            except Exception as err:
                raise failed(
                    f"could not start a local Dask cluster with {options} ({err}); in a "
                    "script, start the run under `if __name__ == '__main__':` (the worker "
                    "processes import the main module)") from None
        return str(self._cluster.scheduler_address)

    def _subscribe(self, client: Any) -> None:
        # A scheduler that restarted knows no subscription: subscribe on each new one.
        current = id(getattr(client, "scheduler_comm", None))
        if self._subscribed != current:
            client.subscribe_topic(self.topic, self._event)
            self._subscribed = current

    def _event(self, event: tuple[float, Any]) -> None:
        _, message = event
        if isinstance(message, dict):
            route = self.routes.get(str(message.get("token")))
            if route is not None:
                route.message(message)

    def dashboard(self) -> str | None:
        """The Dask dashboard's address, when the cluster serves one."""
        client = self._client
        try:
            link = client.dashboard_link if client is not None else None
        except Exception:  # no dashboard (bokeh missing, or turned off)
            return None
        return str(link) if link else None

    def scheduler_address(self) -> str:
        if self.given is not None:
            return str(self.given.scheduler.address)
        return self.address or "local cluster"

    # -- closing ------------------------------------------------------------------
    def close(self) -> None:
        """Close what this connection made (a given client stays open)."""
        with self._lock:
            client, cluster = self._client, self._cluster
            self._cluster = None
            self._subscribed = None
            if self.given is None:
                self._client = None
                if client is not None:
                    self._quiet_close(client)
            if cluster is not None:
                # Closing at exit: nothing is left to tell anyone of a failure.
                with contextlib.suppress(Exception):
                    cluster.close()

    @staticmethod
    def _quiet_close(client: Any) -> None:
        # A client whose scheduler is gone may fail to close cleanly.
        with contextlib.suppress(Exception):
            client.close(timeout=5)
