"""Control of a run from any process: cancel, reset and retry through the store.

The process that executes a run holds its lease; nobody else can reach it but through
the store. A cancel is therefore an event of the run, ``run.cancel_requested`` (``by``,
``via``, ``at``), appended by whoever asks: the owner looks for such requests of the
runs it executes several times a second (:class:`CommandWatch`) and cancels the run as
a cancel in its own process does; a process that takes the run over later finds the
request in the run's history and cancels the run at once. A run nobody executes (not
started, its owner dead) is ended as cancelled by the process that asks, under the
run's lease, so that no owner can begin meanwhile.

A reset rewrites what the next execution does, so it needs the run to be idle: it is
made under the run's lease and refused, naming the owner, while a live process holds
it. A retry executes the run again here (or hands it to its queue), once nobody else
executes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import RunOwned
from orbits_nb.core.rows import Batch, Lease, Owner
from orbits_nb.core.state import RUN_TERMINAL, Event, RunState, fold

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine

#: Seconds between two looks for requests while runs execute here. A look costs no
#: query at all unless a command was recorded since the last one (``command_mark``: a
#: sidecar of a DuckDB file that every command moves), so it is frequent.
POLL_SECONDS = 0.05

#: What a cancel that ends a run nobody executes records as its error.
CANCELLED = {"type": "RunCancelled", "message": "the run was cancelled"}


def who() -> str:
    """Who asks, for the record: ``user@host``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user}@{os.uname().nodename}"


def request(via: str) -> dict[str, Any]:
    """The data of a ``run.cancel_requested`` event."""
    return {"by": who(), "via": via, "at": time.time()}


class CommandWatch:
    """The owner's side: looks for requests to the runs executing here and acts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: The newest seq looked at, and the store's command mark at that look.
        self.after = 0
        self.mark: Any = object()

    async def serve(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.look()
            except Exception:  # a store fault: the writer reports it; look again later
                self.mark = object()

    async def look(self) -> None:
        engine = self.engine
        ids = [run_id for run_id, run in list(engine.active.items()) if not run.done]
        if not ids:
            return
        mark = engine.store.command_mark()
        if mark is not None and mark == self.mark:
            return  # no command was recorded anywhere since the last look
        loop = asyncio.get_running_loop()
        events, after = await loop.run_in_executor(None, engine.store.commands, ids,
                                                   self.after)
        self.mark, self.after = mark, after
        if engine.store.file is not None:
            # The look may have opened the state file: the writer, which hands it over
            # to processes waiting for it, must know (it sleeps while it thinks it
            # closed).
            engine.writer.submit(Batch())
        for event in events:
            run = engine.active.get(event.run_id)
            execution = run.execution if run is not None else None
            # A request recorded before this execution loaded the run is in what it
            # loaded: standing, it cancelled the run at start; else an earlier
            # execution's end answered it (a retry must not be cancelled by it).
            if run is None or run.done or execution is None or event.seq is None \
                    or event.seq <= execution.state.last_seq:
                continue
            if event.kind == "run.cancel_requested":
                run.cancel_here(None)


@contextlib.contextmanager
def held(engine: Engine, run_id: str, what: str) -> Iterator[Owner]:
    """Hold the lease of the run (of its top-level run: a nested run is executed by
    whoever executes that one) for a command made from here; RunOwned (naming the
    owner) when a live process executes it. The caller's batch releases it (``key``)."""
    owner = Owner(uuid.uuid4().hex, engine.store.host, os.getpid())
    key = root_of(run_id)
    holder = engine.store.take_lease("run", key, owner)
    if holder is not None:
        raise owned(holder, what)
    try:
        yield owner
    except BaseException:
        engine.store.release_lease("run", key, owner.token)
        raise


def root_of(run_id: str) -> str:
    return run_id.split("/", 1)[0]


def owned(lease: Lease, what: str) -> RunOwned:
    where = f"{lease.host} pid {lease.pid}"
    return RunOwned(f"run {lease.key!r} is executing in {where}: cannot {what} it from "
                    "here while it executes", run_id=lease.key, owner=f"{lease.host}:"
                    f"{lease.pid}", hint="cancel it (run.cancel()) or wait for it, then "
                    f"{what} it", cli_hint=f"cancel it (`orbits-nb cancel {lease.key}`) "
                    f"or wait for it, then {what} it")


def live_owner(engine: Engine, run_id: str) -> Lease | None:
    """The lease of the live process executing ``run_id``, if one does."""
    store = engine.store
    for lease in store.leases("run", [root_of(run_id)]):
        if lease.token != engine.owner.token and store.alive(lease.host, lease.pid,
                                                             lease.heartbeat):
            return lease
    return None


def cancel_elsewhere(engine: Engine, run_id: str, via: str) -> str:
    """Cancel a run this process does not execute. Returns what happened:
    ``requested`` (its owner cancels it), ``cancelled`` (nobody executed it: ended
    here) or ``ended`` (it had ended already)."""
    if root_of(run_id) != run_id:
        # A nested run ends with the run it is nested in: that one is cancelled.
        return cancel_elsewhere(engine, root_of(run_id), via)
    engine.writer.flush()
    # One hold of the state file for the whole command: the owner gets it back (and
    # finds the request) as soon as the request is written.
    with engine.store.keep_open():
        return _cancel(engine, run_id, via)


def _cancel(engine: Engine, run_id: str, via: str) -> str:
    store = engine.store
    state = fold(run_id, store.load_run(run_id))
    if state.status in RUN_TERMINAL:
        return "ended"
    asked = Event(run_id, "run.cancel_requested", data=request(via))
    try:
        with held(engine, run_id, "cancel") as owner:
            state = fold(run_id, store.load_run(run_id))  # under the lease: final
            if state.status in RUN_TERMINAL:
                engine.writer.submit(Batch(release_leases=[(run_id, owner.token)])).result()
                return "ended"
            events = [asked, *_unfinished_steps(state),
                      Event(run_id, "run.cancelled", data={"error": CANCELLED,
                                                           "by": asked.data["by"]})]
            engine.writer.submit(Batch(events=events,
                                       release_leases=[(run_id, owner.token)])).result()
            return "cancelled"
    except RunOwned:
        engine.writer.submit(Batch(events=[asked])).result()
        return "requested"


def _unfinished_steps(state: RunState) -> list[Event]:
    """The attempts a gone owner left open end cancelled with the run."""
    return [Event(state.run_id, "step.cancelled", step.key, step.attempts,
                  data={"error": CANCELLED})
            for step in state.steps.values() if step.status in ("running", "waiting",
                                                                "retrying")]
