"""Comm traffic of the run monitor for a 1,000-step run, and of the dashboard over
10,000 runs.

    .venv/bin/python bench/widget_traffic.py [--steps 1000] [--interval 0.5]
                                             [--runs 10000] [--only monitor|dashboard]

Monitor: runs a real workflow of ``--steps`` sequential steps on a throwaway state file
with a monitor attached to a counting comm (as a notebook would, minus the browser),
and prints the engine's state changes next to the comm messages and bytes the monitor
sent; then the cost of opening the monitor of the finished run.

Dashboard: records ``--runs`` finished runs (their events written through the store,
as in the browser tests), then times in this process, which stands for the kernel,
the first paint (the widget made with its first page), a page change, a filter, a
search and an idle poll, with the comm bytes each sends.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import comm

import orbits_nb as ob
from orbits_nb.views.dashboard import Dashboard
from orbits_nb.views.monitor import Monitor

TARGET_MS = 300.0


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
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--only", choices=("monitor", "dashboard"))
    args = parser.parse_args()
    comms: list[CountingComm] = []

    def create_comm(**kwargs: Any) -> CountingComm:
        comms.append(CountingComm(**kwargs))
        return comms[-1]

    comm.create_comm = create_comm
    if args.only != "dashboard":
        monitor_traffic(args, comms)
    if args.only != "monitor":
        dashboard_traffic(args, comms)


def monitor_traffic(args: argparse.Namespace, comms: list[CountingComm]) -> None:
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


def _timed(action: Any, list_comm: CountingComm) -> tuple[float, float, int]:
    """Wall and CPU milliseconds of ``action``, and the bytes the run list sent."""
    before = list_comm.bytes
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000,
            list_comm.bytes - before)


def dashboard_traffic(args: argparse.Namespace, comms: list[CountingComm]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from run_list_data import write_runs

    with tempfile.TemporaryDirectory() as tmp:
        engine = ob.Engine(Path(tmp) / "state.duckdb")
        wrote = time.perf_counter()
        write_runs(engine.store, args.runs)
        engine.store.rebuild_history()
        print(f"\ndashboard over {args.runs:,} runs (recorded in "
              f"{time.perf_counter() - wrote:.1f} s, history folded)")
        before = len(comms)
        board: list[Dashboard] = []
        wall, cpu = time.perf_counter(), time.process_time()
        board.append(Dashboard(engine, interval=3600))
        first = ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000)
        made = comms[before:]
        dash = board[0]
        list_comm = next(c for c in made if c.comm_id == dash.list.comm.comm_id)
        opened = sum(c.bytes for c in made)
        print(f"  first paint: {first[0]:.0f} ms ({first[1]:.0f} ms CPU), "
              f"{opened / 1024:.0f} KB opening the widgets (incl. "
              f"{len(dash.list._esm) // 1024} KB of front-end code), "
              f"{dash.list.total:,} runs counted")
        steps = [("page change (offset 50)", lambda: setattr(dash.list, "offset", 50)),
                 ("last page", lambda: setattr(dash.list, "offset", args.runs - 50)),
                 ("filter had failures", lambda: setattr(dash.list, "had_failures", "yes")),
                 ("search client=acme", lambda: setattr(dash.list, "search", "client=acme")),
                 ("idle poll (nothing changed)", dash.refresh),
                 ("forced refresh (nothing changed)", lambda: dash.refresh(force=True))]
        worst = first[0]
        for label, action in steps:
            took, cpu_ms, sent = _timed(action, list_comm)
            worst = max(worst, took)
            print(f"  {label}: {took:.0f} ms ({cpu_ms:.0f} ms CPU), {sent / 1024:.1f} KB sent")
        verdict = "within" if worst < TARGET_MS else "OVER"
        print(f"  slowest: {worst:.0f} ms, {verdict} the {TARGET_MS:.0f} ms target")
        dash.close()
        engine.close()


if __name__ == "__main__":
    main()
