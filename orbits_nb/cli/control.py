"""``orbits-nb cancel RUN_ID``, ``retry RUN_ID [--from STEP]``, ``reset RUN_ID STEP``.

They act on a run wherever it executes: a cancel reaches the process executing it
through the store (see :mod:`orbits_nb.engine.control`); reset and retry need a run
that nobody executes (ended, or its process gone) and refuse, naming the owner,
otherwise.

Exit codes: 0 done (cancel: the run is cancelled or ended cancelled by its owner;
retry: the run succeeded, or went back to its queue), 1 not done (cancel: the run had
already ended, or its owner did not record the cancel within ``--timeout``; retry: the
run ended failed or cancelled), 2 a mistake (an unknown run or step, a run executing
elsewhere).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from orbits_nb.cli import arguments
from orbits_nb.core.errors import InvalidArgument, OrbitsError

_CODES = ("Exit codes: 0 done, 1 not done (see the message), 2 an unknown run or step, "
          "or a run executing elsewhere.")


def register(commands: Any) -> None:
    cancel = commands.add_parser(
        "cancel", help="cancel a run, wherever it executes",
        description="Cancel RUN_ID. Executing in another process or on another host: "
                    "its owner is asked through the store and cancels it (within a "
                    "second); executing nowhere (not started, its process gone): it is "
                    "recorded as cancelled here. " + _CODES)
    cancel.add_argument("run_id", metavar="RUN_ID", type=arguments.text)
    cancel.add_argument("--timeout", type=arguments.seconds, default=30.0,
                        metavar="SECONDS", help="how long to wait for the owner to record "
                                                "the cancel (default: 30)")
    cancel.add_argument("--no-wait", action="store_true",
                        help="ask the owner and return at once")
    cancel.set_defaults(handler=cmd_cancel)

    retry = commands.add_parser(
        "retry", help="execute a run again (optionally from a step)",
        description="Execute RUN_ID again: succeeded steps replay, the others run. With "
                    "--from STEP, STEP and the steps after it are discarded first (as "
                    "`orbits-nb reset`). A run that came from a queue goes back to it; "
                    "any other executes here, by re-executing its runbook or by "
                    "importing its workflow (as `orbits-nb resume`). The run must not "
                    "be executing. " + _CODES)
    retry.add_argument("run_id", metavar="RUN_ID", type=arguments.text)
    retry.add_argument("--from", dest="step", metavar="STEP", type=arguments.text,
                       help="discard this step and every later one first")
    retry.set_defaults(handler=cmd_retry, progress=False)

    reset = commands.add_parser(
        "reset", help="discard a step of a run and every step after it",
        description="Discard STEP and every step that started after it in RUN_ID, so "
                    "the next execution (orbits-nb retry RUN_ID, orbits-nb resume "
                    "RUN_ID, or running its runbook again) re-executes from there. The "
                    "run must not be executing (a run whose process is gone may be "
                    "reset). " + _CODES)
    reset.add_argument("run_id", metavar="RUN_ID", type=arguments.text)
    reset.add_argument("step", metavar="STEP", nargs="?", type=arguments.text,
                       help="the step key, as `orbits-nb show RUN_ID` lists it")
    reset.add_argument("--all", action="store_true", help="discard every step of the run")
    reset.set_defaults(handler=cmd_reset)


def _run(run_id: str) -> Any:
    from orbits_nb.cli.runs import _run as recorded

    return recorded(run_id)


def cmd_cancel(args: argparse.Namespace) -> int:
    run = _run(args.run_id)
    outcome = run.cancel(via="cli")
    if outcome == "ended":
        print(f"orbits-nb: run {run.run_id} already ended ({run.status}); nothing to "
              "cancel")
        return 1
    if outcome == "cancelled":
        print(f"orbits-nb: run {run.run_id} cancelled (nothing was executing it)")
        return 0
    owner = run.state().owner
    where = f"pid {owner.get('pid')} on {owner.get('host')}"
    if args.no_wait:
        print(f"orbits-nb: asked {where}, which executes run {run.run_id}, to cancel it")
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        status = run.state().status
        if status in ("succeeded", "failed", "cancelled"):
            if status == "cancelled":
                print(f"orbits-nb: run {run.run_id} cancelled by its owner ({where})")
                return 0
            print(f"orbits-nb: run {run.run_id} ended {status} before the cancel reached "
                  f"it")
            return 1
        time.sleep(0.05)
    print(f"orbits-nb: asked {where} to cancel run {run.run_id}; it has not recorded "
          f"the cancel within {args.timeout:g} s (a step that cannot be interrupted may "
          "be finishing); check with `orbits-nb show " + run.run_id + "`")
    return 1


def cmd_reset(args: argparse.Namespace) -> int:
    if bool(args.step) == bool(args.all):
        raise InvalidArgument("name the STEP to discard from, or pass --all to discard "
                              "every step (see the steps with `orbits-nb show RUN_ID`)")
    run = _run(args.run_id)
    steps = run.state().ordered_steps()
    step = args.step if args.step else (steps[0].key if steps else None)
    if step is None:
        print(f"orbits-nb: run {run.run_id} has no steps; nothing to reset")
        return 0
    dropped = _reset(run, step)
    print(f"orbits-nb: reset run {run.run_id} from step {step!r} ({len(dropped)} step(s) "
          f"discarded: {', '.join(dropped)}); execute it again with `orbits-nb retry "
          f"{run.run_id}`")
    return 0


def _reset(run: Any, step: str) -> list[str]:
    steps = run.state().ordered_steps()
    run.reset(step)
    start = next(s.pos for s in steps if s.key == step)
    return [s.key for s in steps if s.pos >= start]


def cmd_retry(args: argparse.Namespace) -> int:
    from orbits_nb.engine.control import live_owner, owned

    run = _run(args.run_id)
    if "/" in run.run_id:
        root = run.run_id.split("/", 1)[0]
        raise OrbitsError(f"run {run.run_id!r} is nested in run {root!r}: retry that one "
                          f"(`orbits-nb retry {root}`)", run_id=run.run_id)
    lease = live_owner(run.engine, run.run_id)
    if lease is not None:
        raise owned(lease, "retry")
    if args.step:
        dropped = _reset(run, args.step)
        print(f"orbits-nb: reset run {run.run_id} from step {args.step!r} "
              f"({', '.join(dropped)} discarded)")
    state = run.state()
    if state.meta.get("queue"):
        run.retry()
        print(f"orbits-nb: run {run.run_id} is queued again on {state.meta['queue']!r}")
        return 0
    if state.status == "succeeded":
        print(f"orbits-nb: run {run.run_id} succeeded; nothing to retry (retry --from "
              "STEP executes STEP and the steps after it again)")
        return 0
    return _execute_again(run.run_id)


def _execute_again(run_id: str) -> int:
    from orbits_nb.cli.runbooks import _on_sigterm, _print_record
    from orbits_nb.runbooks.resume import resume

    _on_sigterm()
    done = resume(run_id)
    if done.notebook_run is not None:
        _print_record(done.notebook_run, False)
    print(f"orbits-nb: run {run_id} is {done.run_status} (executed again by {done.how})")
    return 0 if done.ok else 1
