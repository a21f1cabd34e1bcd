"""``orbits-nb run``, ``params``, ``resume``, ``schedule ...``, ``scheduler``.

Only argparse is set up at import: papermill, nbclient and croniter are imported by
the commands that use them, so ``orbits-nb --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from orbits_nb.cli.output import print_rows
from orbits_nb.core.errors import OrbitsError
from orbits_nb.engine.table import Table


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run", help="execute a runbook notebook headlessly (papermill) and record it",
        description="Execute NOTEBOOK headlessly; write the executed notebook to "
                    "output/<runbook>/<date>/<id>.ipynb; exit 0 on success, 1 on failure.")
    run.add_argument("notebook")
    _parameter_options(run)
    _execution_options(run)
    run.add_argument("--output", metavar="FILE", help="write the executed notebook here")
    run.add_argument("--json", action="store_true", help="print the record as JSON")
    run.set_defaults(handler=cmd_run)

    params = commands.add_parser("params", help="list a runbook's parameters")
    params.add_argument("notebook")
    params.add_argument("--json", action="store_true", help="print JSON lines")
    params.set_defaults(handler=cmd_params)

    resume = commands.add_parser(
        "resume", help="resume a run by re-executing its notebook (or by import)",
        description="Resume a workflow run (or a notebook run): its runbook is executed "
                    "again with the same parameters, and completed steps are replayed.")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--by-import", action="store_true",
                        help="resume a runbook's workflow run by importing its class "
                             "instead of executing the runbook again")
    _parameter_options(resume)
    _execution_options(resume)
    resume.set_defaults(handler=cmd_resume)

    from orbits_nb.cli.schedules import register_schedule

    register_schedule(commands)

    scheduler = commands.add_parser("scheduler", help="run due schedules (long-running)")
    scheduler.add_argument("--once", action="store_true",
                           help="one pass: start what is due, wait for it, exit")
    scheduler.add_argument("--max-parallel", type=int, default=4, metavar="N")
    scheduler.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                           help="how often to look for new schedules and finished runs")
    scheduler.add_argument("--grace", type=float, default=60.0, metavar="SECONDS",
                           help="how late an occurrence may start under catch-up 'skip'")
    scheduler.add_argument("--max-attempts", type=int, default=3, metavar="N",
                           help="executions per occurrence when runners or kernels die")
    scheduler.set_defaults(handler=cmd_scheduler)


def _parameter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"),
                        help="a parameter (typed by its declaration; secrets: "
                             "env:VARIABLE reads the value from the environment)")
    parser.add_argument("-f", "--parameters-file", metavar="FILE",
                        help="parameters from a YAML or JSON file")
    parser.add_argument("-j", "--parameters-json", metavar="JSON",
                        help="parameters as a JSON object")


def _execution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", metavar="DIR",
                        help="output folder (default: $ORBITS_NB_OUTPUT, else output/ in "
                             "the project root)")
    parser.add_argument("--kernel", help="kernel name (default: the notebook's)")
    parser.add_argument("--cell-timeout", type=float, metavar="SECONDS",
                        help="fail a cell that runs longer than this")
    parser.add_argument("--start-timeout", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.add_argument("--log-output", action="store_true",
                        help="echo cell output to the console (secrets masked)")


# -- helpers ----------------------------------------------------------------------------

def _given(args: argparse.Namespace) -> dict[str, Any]:
    from orbits_nb.runbooks.errors import ParameterError

    values: dict[str, Any] = {}
    if args.parameters_file:
        path = Path(args.parameters_file)
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix in (".yaml", ".yml"):
                import yaml

                loaded = yaml.safe_load(text)
            else:
                loaded = json.loads(text)
        except Exception as err:
            raise ParameterError(f"cannot read parameters file {path}: {err}") from None
        if not isinstance(loaded, dict):
            raise ParameterError(f"parameters file {path} must hold a mapping of names to "
                                 "values")
        values.update(loaded)
    if args.parameters_json:
        try:
            loaded = json.loads(args.parameters_json)
        except json.JSONDecodeError as err:
            raise ParameterError(f"--parameters-json is not valid JSON: {err}") from None
        if not isinstance(loaded, dict):
            raise ParameterError("--parameters-json must be a JSON object")
        values.update(loaded)
    return values


def _pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(name, value) for name, value in args.parameter]


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"output_dir": args.output_dir, "kernel": args.kernel,
            "cell_timeout": args.cell_timeout, "start_timeout": args.start_timeout,
            "progress": args.progress or False, "log_output": args.log_output}


def _shown(path: str | None) -> str:
    if not path:
        return ""
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def _on_sigterm() -> None:
    # A stopped runner still records its notebook run (as interrupted) and stops its kernel.
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, handler)


def _print_record(record: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps({**record.__dict__, "parameters": record.masked_parameters()},
                         default=str))
        return 0 if record.ok else 1
    print(f"orbits-nb: {record.summary()}")
    if record.workflow_runs:
        print(f"  workflow runs: {', '.join(record.workflow_runs)}")
    if record.error:
        _print_failure(record)
    print(f"  executed notebook: {_shown(record.output_path)}")
    return 0 if record.ok else 1


def _print_failure(record: Any) -> None:
    error = record.error
    trace = str(error.get("traceback") or "").strip().splitlines()
    lines = []
    if record.failed_cell is not None:
        count = error.get("execution_count")
        label = f" (In [{count}])" if count else ""
        lines.append(f"  failed in cell {record.failed_cell}{label}:")
        lines += [f"    | {line}" for line in str(error.get("source") or "").splitlines()[-12:]]
    lines += [f"  {line}" for line in trace[-15:]]
    if not trace:
        lines.append(f"  {error.get('type')}: {error.get('message')}")
    print("\n".join(lines), file=sys.stderr)


# -- commands ---------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks.execute import execute, prepare

    job = prepare(args.notebook, _given(args), cli=_pairs(args), output=args.output,
                  trigger="cli", **_options(args))
    if not args.json:
        print(f"orbits-nb: running {_shown(str(job.notebook))} as "
              f"{job.record.notebook_run_id} (kernel {job.kernel_name})", file=sys.stderr)
    _on_sigterm()
    return _print_record(execute(job), args.json)


def cmd_params(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks.parameters import inspect

    sig = inspect(args.notebook)
    rows = [{"name": p.name, "type": p.type + (" | None" if p.nullable else ""),
             "default": p.describe_default(), "required": p.required, "secret": p.secret,
             "help": p.help} for p in sig.parameters.values()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if sig.cell is None:
        print(f"{_shown(str(sig.notebook))} has no cell tagged 'parameters': it takes no "
              "parameters")
        return 0
    print(Table(["name", "type", "default", "required", "secret", "help"], rows).text(60))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks.resume import resume

    _on_sigterm()
    done = resume(args.run_id, _given(args), cli=_pairs(args), by_import=args.by_import,
                  **_options(args))
    if done.how == "nothing":
        print(f"orbits-nb: run {done.run_id} already succeeded; nothing to resume")
        return 0
    if done.notebook_run is not None:
        _print_record(done.notebook_run, False)
    if done.run_id is not None:
        print(f"orbits-nb: run {done.run_id} is {done.run_status} (resumed by {done.how})")
        if done.notebook_run is not None and done.notebook_run.ok and \
                done.run_status != "succeeded":
            print(f"orbits-nb: the notebook ran but did not complete run {done.run_id}; does "
                  "it still start that run with the same id (no fresh=True)?",
                  file=sys.stderr)
    return 0 if done.ok else 1


def _state() -> Path:
    from orbits_nb.store.location import default_state_path

    return default_state_path()


def _store() -> Any:
    from orbits_nb.store.duckdb_store import DuckDBStore

    return DuckDBStore(_state())


def cmd_scheduler(args: argparse.Namespace) -> int:
    import threading

    from orbits_nb.runbooks.scheduler import Scheduler

    scheduler = Scheduler(_state(), max_parallel=args.max_parallel, grace=args.grace,
                          max_attempts=args.max_attempts)
    if args.once:
        scheduler.tick()
        scheduler.wait_children()
        scheduler.store.close()
        return 0
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    try:
        scheduler.serve(stop.wait, poll=args.poll)
    finally:
        scheduler.log("stopping: interrupting running runbooks (resumed at next start)")
        scheduler.stop()
    return 0


def print_notebook_runs(args: argparse.Namespace) -> int:
    """``orbits-nb runs --notebooks``: recent notebook runs, newest first."""
    from orbits_nb.runbooks import records

    store = _store()
    records.reap_orphans(store)
    status = args.status if args.status in records.STATUSES else None
    if args.status and status is None:
        raise OrbitsError(f"notebook runs are running, succeeded or failed, not {args.status}")
    found = records.listing(store, runbook=args.workflow, status=status, limit=args.limit)
    if args.since:
        since = _epoch(args.since)
        found = [r for r in found if (r.started_at or 0) >= since]
    rows = [{"notebook_run_id": r.notebook_run_id, "runbook": r.runbook, "status": r.status,
             "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or 0)),
             "duration_s": round(r.duration_s, 1) if r.duration_s is not None else None,
             "trigger": r.trigger, "workflow_runs": ", ".join(r.workflow_runs),
             "error": (f"cell {r.failed_cell}: " if r.failed_cell is not None else "")
             + f"{r.error.get('type')}: {r.error.get('message')}" if r.error else "",
             "output": _shown(r.output_path)} for r in found]
    print_rows(list(rows[0]) if rows else [], rows, as_json=args.json, width=60,
               empty="no notebook runs yet (run a runbook with `orbits-nb run NOTEBOOK`)")
    return 0


def _epoch(text: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise OrbitsError(f"--since {text!r} is not a date or time (e.g. 2026-11-01 or "
                          "'2026-11-01 14:00')") from None
