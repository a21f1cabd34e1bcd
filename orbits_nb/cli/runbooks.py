"""``orbits-nb run``, ``params``, ``resume``, ``schedule ...``, ``scheduler``.

Only argparse is set up at import: papermill, nbclient and croniter are imported by
the commands that use them, so ``orbits-nb --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from orbits_nb.cli import arguments
from orbits_nb.cli.hints import recorded_fields, swap_hint
from orbits_nb.cli.output import print_rows
from orbits_nb.cli.runbook_options import (
    execution_options,
    given,
    inject_options,
    log_level,
    options,
    pairs,
    parameter_options,
    reading_options,
)
from orbits_nb.cli.state import existing_state, state_path
from orbits_nb.core.errors import OrbitsError, StoreError
from orbits_nb.engine.table import Table


def register(commands: Any) -> None:
    _register_run(commands)
    params = commands.add_parser("params", help="list a runbook's parameters")
    params.add_argument("notebook", metavar="NOTEBOOK")
    params.add_argument("--json", action="store_true", help="print JSON lines")
    params.set_defaults(handler=cmd_params)

    resume = commands.add_parser(
        "resume", help="resume a run by re-executing its notebook (or by import)",
        description="Resume a workflow run (or a notebook run): its runbook is executed "
                    "again with the same parameters, and completed steps are replayed.")
    resume.add_argument("run_id", metavar="RUN_ID", type=arguments.text)
    resume.add_argument("--by-import", action="store_true",
                        help="resume a runbook's workflow run by importing its class "
                             "instead of executing the runbook again")
    parameter_options(resume)
    reading_options(resume)
    execution_options(resume)
    resume.set_defaults(handler=cmd_resume, progress=False)

    from orbits_nb.cli.schedules import register_schedule

    register_schedule(commands)
    _register_scheduler(commands)


def _register_run(commands: Any) -> None:
    run = commands.add_parser(
        "run", help="execute a runbook notebook headlessly (papermill) and record it",
        description="Execute NOTEBOOK (a .ipynb file or a URL of a papermill I/O handler) "
                    "headlessly; write the executed notebook to OUTPUT_PATH (a .ipynb "
                    "file, '-' for stdout, or a URL such as s3://bucket/out.ipynb; "
                    "default: output/<runbook>/<date>/<id>.ipynb); exit 0 on success, "
                    "1 on failure, 138 when the kernel died, 2 on bad input (checked "
                    "before a kernel starts). Takes papermill's options.")
    run.add_argument("notebook", metavar="NOTEBOOK")
    run.add_argument("output_path", metavar="OUTPUT_PATH", nargs="?",
                     help="where the executed notebook goes (as --output)")
    parameter_options(run)
    reading_options(run)
    inject_options(run)
    execution_options(run)
    run.add_argument("--output", metavar="FILE", help="write the executed notebook here")
    run.add_argument("--prepare-only", action="store_true",
                     help="write the notebook with its parameters, without executing it "
                          "(nothing is recorded; secrets are not written)")
    run.add_argument("--prepare-execute", action="store_false", dest="prepare_only",
                     help="execute the notebook (the default)")
    run.add_argument("--json", action="store_true", help="print the record as JSON")
    run.add_argument("--help-notebook", action="store_true",
                     help="list the notebook's parameters and exit (as orbits-nb params)")
    run.set_defaults(handler=cmd_run, progress=False)


def _register_scheduler(commands: Any) -> None:
    scheduler = commands.add_parser("scheduler", help="run due schedules (long-running)")
    scheduler.add_argument("--once", action="store_true",
                           help="one pass: start what is due, wait for it, exit")
    scheduler.add_argument("--max-parallel", type=arguments.positive_int, default=4,
                           metavar="N", help="runbooks executing at once (default: 4)")
    scheduler.add_argument("--poll", type=arguments.seconds, default=5.0,
                           metavar="SECONDS",
                           help="how often to look for new schedules and finished runs")
    scheduler.add_argument("--grace", type=arguments.seconds_or_zero, default=60.0,
                           metavar="SECONDS",
                           help="how late an occurrence may start under catch-up 'skip'")
    scheduler.add_argument("--max-attempts", type=arguments.positive_int, default=3,
                           metavar="N",
                           help="executions per occurrence when runners or kernels die")
    scheduler.set_defaults(handler=cmd_scheduler)


# -- helpers ----------------------------------------------------------------------------

def _shown(path: str | None) -> str:
    if not path:
        return ""
    if path == "-":
        return "(stdout)"
    if "://" in path:
        return path
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


def _print_record(record: Any, as_json: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if as_json:
        print(json.dumps({**record.__dict__, "parameters": record.masked_parameters()},
                         default=str), file=out)
        return exit_code(record)
    hints = _workflow_hints(record) if record.error else []
    print(f"orbits-nb: {_swap(record.summary(), hints)}", file=out)
    if record.workflow_runs:
        print(f"  workflow runs: {', '.join(record.workflow_runs)}", file=out)
    if record.error:
        _print_failure(record, hints)
    print(f"  executed notebook: {_shown(record.output_path)}", file=out)
    return exit_code(record)


def exit_code(record: Any) -> int:
    """papermill's exit codes: 0 success, 1 failure, 138 when the kernel died."""
    if record.ok:
        return 0
    return 138 if (record.error or {}).get("type") == "KernelDied" else 1


def _swap(text: str, hints: list[dict[str, Any]]) -> str:
    for fields in hints:
        text = swap_hint(text, fields)
    return text


def _workflow_hints(record: Any) -> list[dict[str, Any]]:
    """The hints recorded with the errors of the record's failed workflow runs."""
    from orbits_nb.store import open_store

    path = state_path()
    if not record.workflow_runs or (isinstance(path, Path) and not path.exists()):
        return []
    store = open_store(path)
    try:
        return _hints_of(store, record.workflow_runs)
    finally:
        store.close()


def _hints_of(store: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    return [fields for error in store.failed_errors(run_ids)
            if (fields := recorded_fields(error)).get("cli_hint")]


def _print_failure(record: Any, hints: list[dict[str, Any]]) -> None:
    error = record.error
    trace = _swap(str(error.get("traceback") or ""), hints).strip().splitlines()
    lines = []
    if record.failed_cell is not None:
        count = error.get("execution_count")
        label = f" (In [{count}])" if count else ""
        lines.append(f"  failed in cell {record.failed_cell}{label}:")
        lines += [f"    | {line}" for line in str(error.get("source") or "").splitlines()[-12:]]
    lines += [f"  {line}" for line in trace[-15:]]
    if not trace:
        lines.append(f"  {error.get('type')}: {_swap(str(error.get('message')), hints)}")
    print("\n".join(lines), file=sys.stderr)


# -- commands ---------------------------------------------------------------------------

def _output(args: argparse.Namespace) -> str | None:
    if args.output_path is not None and args.output is not None:
        raise OrbitsError(f"two outputs given (OUTPUT_PATH {args.output_path!r} and --output "
                          f"{args.output!r}); give one")
    output: str | None = args.output_path if args.output_path is not None else args.output
    if output == "-" and args.json:
        raise OrbitsError("the executed notebook goes to stdout ('-'), so --json cannot; "
                          "drop one of them")
    return output


def cmd_run(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks.execute import execute, prepare, prepare_only

    if args.help_notebook:
        return cmd_params(args)
    output = _output(args)
    level = log_level(args, output)
    job = prepare(args.notebook, given(args), cli=pairs(args), output=output,
                  trigger="cli", **options(args))
    # With the notebook on stdout, everything else goes to stderr.
    out = sys.stderr if job.output.to_stdout else sys.stdout
    if level <= logging.WARNING:
        for note in job.notes:
            print(f"orbits-nb: warning: {note}", file=sys.stderr)
    if args.prepare_only:
        written = prepare_only(job)
        if args.json:
            print(json.dumps({"prepared": str(written),
                              "parameters": job.values.masked()}, default=str))
        else:
            print(f"orbits-nb: prepared {_shown(job.record.notebook)} with its parameters "
                  f"(not executed): {_shown(str(written))}", file=out)
        return 0
    if not args.json and level <= logging.INFO:
        print(f"orbits-nb: running {_shown(job.record.notebook)} as "
              f"{job.record.notebook_run_id} (kernel {job.kernel_name}, working directory "
              f"{_shown(str(job.working_directory())) or '.'})", file=sys.stderr)
    _on_sigterm()
    return _print_record(execute(job), args.json, out)


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
        print(f"{_shown(str(args.notebook))} has no cell tagged 'parameters': papermill and "
              "orbits-nb inject parameters at its top (undeclared, so unchecked)")
        return 0
    print(Table(["name", "type", "default", "required", "secret", "help"], rows).text(60))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from orbits_nb.cli.state import missing
    from orbits_nb.core.errors import RunNotFound
    from orbits_nb.runbooks.resume import resume

    absent = missing(f"workflow run or notebook run {args.run_id!r}", RunNotFound,
                     run_id=args.run_id)
    if absent is not None:
        raise absent
    _on_sigterm()
    done = resume(args.run_id, given(args), cli=pairs(args), by_import=args.by_import,
                  **options(args))
    if done.how == "nothing":
        print(f"orbits-nb: run {done.run_id} already succeeded; nothing to resume")
        return 0
    if done.notebook_run is not None:
        _print_record(done.notebook_run, False)
    if done.run_id is not None:
        print(f"orbits-nb: run {done.run_id} is {done.run_status} (resumed by {done.how})")
        if done.run_status == "failed":
            _print_run_error(done.run_id)
        if done.notebook_run is not None and done.notebook_run.ok and \
                done.run_status != "succeeded":
            print(f"orbits-nb: the notebook ran but did not complete run {done.run_id}; does "
                  "it still start that run with the same id (no fresh=True)?",
                  file=sys.stderr)
    return 0 if done.ok else 1


def _print_run_error(run_id: str) -> None:
    from orbits_nb.cli.hints import cli_message
    from orbits_nb.core.state import fold, short_error

    store = _store()
    try:
        error = fold(run_id, store.load_run(run_id)).error
    finally:
        store.close()
    if error:
        line = short_error({**error, "message": cli_message(str(error.get("message", "")),
                                                            recorded_fields(error))})
        print(f"  error: {line}", file=sys.stderr)


def _state() -> Path | str:
    return state_path()


def _store() -> Any:
    from orbits_nb.store import open_store

    return open_store(_state())


def cmd_scheduler(args: argparse.Namespace) -> int:
    import threading

    from orbits_nb.runbooks.scheduler import Scheduler

    if args.once and existing_state("nothing scheduled") is None:
        return 0
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
    from orbits_nb._filters import since_epoch
    from orbits_nb.runbooks import records

    if args.status is not None and args.status not in records.STATUSES:
        raise OrbitsError(f"notebook runs are {', '.join(records.STATUSES)}, not "
                          f"{args.status!r}; drop --status or pick one of those")
    store = _store()
    try:
        records.reap_orphans(store)
    except StoreError as err:
        # Listing needs no write: on a file this process may not write (or a full disk)
        # runs whose runner died are listed as they are until a writer marks them.
        if err.fields.get("reason") not in ("read-only", "disk-full"):
            raise
    found = records.listing(store, runbook=args.workflow, status=args.status,
                            limit=None if args.since else args.limit)
    if args.since:
        since = since_epoch(args.since, "--since")
        found = [r for r in found if (r.started_at or 0) >= since][:args.limit]
    hints = _hints_of(store, [run for r in found if r.error for run in r.workflow_runs])
    rows = [{"notebook_run_id": r.notebook_run_id, "runbook": r.runbook, "status": r.status,
             "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or 0)),
             "duration_s": round(r.duration_s, 1) if r.duration_s is not None else None,
             "trigger": r.trigger, "workflow_runs": ", ".join(r.workflow_runs),
             "error": (f"cell {r.failed_cell}: " if r.failed_cell is not None else "")
             + f"{r.error.get('type')}: {_swap(str(r.error.get('message')), hints)}"
             if r.error else "",
             "output": _shown(r.output_path)} for r in found]
    print_rows(list(rows[0]) if rows else [], rows, as_json=args.json, width=60,
               empty="no notebook runs yet (run a runbook with `orbits-nb run NOTEBOOK`)")
    return 0
