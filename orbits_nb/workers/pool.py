"""The worker's child processes: started ahead, each executing one run at a time.

Each process (:mod:`orbits_nb.workers.child` with ``-``) reads run ids on its stdin
and reports ``CODE RUN_ID STATUS [NEXT_ID TAKES]`` on a pipe of its own once a run
stopped (with the run it claimed to go on with); a thread per
process turns the reports into a queue the worker reads without blocking. A process
that a cancel must stop is killed and replaced: the others keep their runs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from orbits_nb.workers.child import CLAIM, REPORT_ENV

#: What a report says when the run got a cancel request (not an exit code).
CANCEL = -1
#: What a report says when the process claimed a run asked by ``claim`` (its id, "-"
#: for none; the takes in the status).
CLAIMED = -2
#: What a slot's run is while its process claims one.
CLAIMING = CLAIM
#: One report of a process: see ``Pool.reports``.
Report = tuple["Slot", int, str, str, "tuple[str, int] | None"]


@dataclass(eq=False)
class Slot:
    """One child process, and the run it executes (None: ready for one)."""

    process: subprocess.Popen[bytes]
    run_id: str | None = None
    reader: threading.Thread | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None


class Pool:
    """Child processes with the environment ``env`` (see the module)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.slots: list[Slot] = []
        #: (slot, what, run id, status, following): what is an exit code, or -1 for
        #: "the run got a cancel request"; following is (run id, takes) of the run the
        #: process claimed and goes on with, or None.
        self.reports: queue.SimpleQueue[Report] = queue.SimpleQueue()

    def _start(self) -> Slot:
        read, write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "orbits_nb.workers.child", "-"],
                env={**self.env, REPORT_ENV: str(write)}, stdin=subprocess.PIPE,
                pass_fds=(write,))
        finally:
            os.close(write)
        slot = Slot(process)
        slot.reader = threading.Thread(target=self._read, args=(slot, read), daemon=True,
                                       name="orbits-nb-child-reports")
        slot.reader.start()
        self.slots.append(slot)
        return slot

    def _read(self, slot: Slot, fd: int) -> None:
        with os.fdopen(fd, "r") as lines:
            for line in lines:
                what, run_id, *rest = line.split()
                following = (rest[1], int(rest[2])) if len(rest) >= 3 else None
                code = {"cancel": CANCEL, "claimed": CLAIMED}.get(what)
                if code == CLAIMED:  # every "ID TAKES" pair after the first's id
                    self.reports.put((slot, code, run_id, " ".join(rest), None))
                    continue
                self.reports.put((slot, int(what) if code is None else code, run_id,
                                  rest[0] if rest else "", following))

    def ready(self, most: int) -> None:
        """Have one idle process ready, while fewer than ``most`` exist."""
        self.slots = [s for s in self.slots
                      if s.alive() or s.run_id not in (None, CLAIMING)]
        if not any(s.run_id is None for s in self.slots) and len(self.slots) < most:
            self._start()

    def send(self, run_id: str) -> Slot:
        """Give ``run_id`` to an idle process (started now if none is)."""
        idle = [s for s in self.slots if s.run_id is None and s.alive()]
        slot = idle[0] if idle else self._start()
        slot.run_id = run_id
        assert slot.process.stdin is not None
        slot.process.stdin.write(run_id.encode() + b"\n")
        slot.process.stdin.flush()
        return slot

    def idle(self) -> Slot | None:
        """A process ready for a run, if one is."""
        return next((s for s in self.slots if s.run_id is None and s.alive()), None)

    def claim(self, slot: Slot, most: int) -> None:
        """Ask the idle process of ``slot`` to claim up to ``most`` runs (see CLAIMED)."""
        slot.run_id = CLAIMING
        assert slot.process.stdin is not None
        slot.process.stdin.write(f"{CLAIMING}{most}\n".encode())
        slot.process.stdin.flush()

    def done(self, slot: Slot) -> None:
        slot.run_id = None

    def kill(self, slot: Slot) -> None:
        slot.process.kill()
        slot.process.wait()
        if slot in self.slots:
            self.slots.remove(slot)

    def signal_busy(self, signum: int) -> None:
        for slot in self.slots:
            if slot.run_id is not None and slot.alive():
                slot.process.send_signal(signum)

    def close_idle(self) -> None:
        """Let idle processes end (their stdin closes); busy ones end after their run."""
        for slot in list(self.slots):
            if slot.run_id is None:
                self._close(slot)

    def close(self) -> None:
        for slot in list(self.slots):
            if slot.alive() and slot.run_id is not None:
                slot.process.kill()
            self._close(slot)

    def _close(self, slot: Slot) -> None:
        if slot.process.stdin is not None and not slot.process.stdin.closed:
            with contextlib.suppress(OSError):  # it ended already
                slot.process.stdin.close()
        slot.process.wait()
        if slot in self.slots:
            self.slots.remove(slot)
