"""Comm traffic of the run monitor for a 1,000-step run.

    .venv/bin/python bench/widget_traffic.py [--steps 1000] [--interval 0.5]

Runs a real workflow of ``--steps`` sequential steps on a throwaway state file with a
monitor attached to a counting comm (as a notebook would, minus the browser), and
prints the engine's state changes next to the comm messages and bytes the monitor
sent; then the cost of opening the monitor of the finished run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import comm

import orbits_nb as ob
from orbits_nb.views.monitor import Monitor


class Quick(ob.Action):
    def main(self) -> Any:
        return self.step


class Many(ob.Workflow):
    async def define(self) -> Any:
        for i in range(int(self.args["n"])):
            await self.do(f"step-{i}", Quick())
        return int(self.args["n"])


class CountingComm:
    kernel = "bench"

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = f"bench-{id(self)}"
        self.messages = 1  # the comm_open carrying the initial state
        self.bytes = len(json.dumps(kwargs.get("data"), default=str))

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, callback: Any) -> None:
        pass

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages += 1
        self.bytes += len(json.dumps(data, default=str))

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    comms: list[CountingComm] = []

    def create_comm(**kwargs: Any) -> CountingComm:
        comms.append(CountingComm(**kwargs))
        return comms[-1]

    comm.create_comm = create_comm
    with tempfile.TemporaryDirectory() as tmp:
        engine = ob.Engine(Path(tmp) / "state.duckdb")
        changes = 0

        def count(_execution: object) -> None:
            nonlocal changes
            changes += 1

        engine.subscribe(count)
        started = time.perf_counter()
        run = engine.start(Many(n=args.steps))
        monitor = Monitor(run, interval=args.interval)
        run.wait()
        while monitor.following:
            time.sleep(0.05)
        took = time.perf_counter() - started
        live = CountingComm()  # the monitor's comm and its layout's, added up
        live.messages = sum(c.messages for c in comms)
        live.bytes = sum(c.bytes for c in comms)
        print(f"{args.steps}-step run in {took:.1f} s: {changes} engine state changes")
        print(f"  live monitor (interval {args.interval} s): {live.messages} comm messages, "
              f"{live.bytes / 1024:.0f} KB (incl. {len(Monitor._esm) // 1024} KB of "
              f"front-end code in the opening message)")
        print(f"  per state change: {live.messages / changes:.4f} messages, "
              f"{live.bytes / changes:.0f} bytes")
        before = len(comms)
        opened = time.perf_counter()
        Monitor(engine.get_run(run.run_id))
        made = comms[before:]
        print(f"  monitor of the finished run: {sum(c.messages for c in made)} messages, "
              f"{sum(c.bytes for c in made) / 1024:.0f} KB, opened in "
              f"{(time.perf_counter() - opened) * 1000:.0f} ms, no thread")
        engine.close()


if __name__ == "__main__":
    main()
