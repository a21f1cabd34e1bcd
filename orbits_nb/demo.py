"""``orbits-nb demo``: the flagship runbook end to end, on this machine only.

Starts a local AWS emulator (moto's server on 127.0.0.1) and a local Slack-compatible
webhook receiver, runs ``notebooks/deploy_backend.ipynb`` headlessly twice against
them (the second execution replays everything and creates nothing), stops both
servers, and prints where the executed notebooks and the state file are.

Everything it writes (executed notebooks, state, repositories, logs) lands in one
visible folder, ``output/demo/<timestamp>/`` in the project root by default, so the
executed notebooks open in JupyterLab and their report cells find the state beside them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbits_nb.core.errors import OrbitsError
from orbits_nb.store.location import project_root

TAKEN_EMAIL_DOMAIN = "taken.example.com"
# What the demo imports beyond the base install (the emulator and the AWS actions).
DEMO_MODULES = ("boto3", "moto")


class DemoError(OrbitsError):
    """The demo could not run (a missing notebook, emulator or kernel)."""


@dataclass
class DemoRun:
    """One headless execution of the runbook during the demo."""

    label: str
    output: Path
    ok: bool
    seconds: float
    accounts: int
    error: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)


def shipped_notebooks() -> Path:
    """The folder of the runbooks and assets that ship with orbits_nb.

    In a wheel it is package data (``orbits_nb/notebooks/``); in a clone or an editable
    install ``orbits_nb/notebooks`` links to the repository's ``notebooks/`` folder, so
    both name the same files.
    """
    package = Path(__file__).resolve().parent
    folder = (package / "notebooks").resolve()
    # A checkout without symbolic links (core.symlinks=false) holds a text file instead.
    return folder if folder.is_dir() else package.parent / "notebooks"


def default_notebook() -> Path:
    return shipped_notebooks() / "deploy_backend.ipynb"


def default_out() -> Path:
    """``output/demo/<timestamp>/`` in the project root: visible, beside other outputs."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return project_root() / "output" / "demo" / stamp


def check_extras() -> None:
    """Refuse early, with the install command, when the demo extra is missing."""
    missing = [name for name in DEMO_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoError(f"the demo needs {', '.join(missing)} (the demo extra): "
                        "pip install 'orbits_nb[demo]'", missing=missing)


def run_demo(*, client: str = "acme", region: str = "eu-west-1",
             notebook: Path | None = None, out: Path | None = None, fail: bool = False,
             account_delay: float = 0.0, drift: bool = False,
             echo: Any = print) -> list[DemoRun]:
    """Run the demo; return what each execution did. ``fail`` uses a taken e-mail.

    ``drift``: then change the stack's SSM parameter by hand in the emulator, and show
    ``orbits-nb drift`` finding it (exit 1, with the diff) and ``orbits-nb reconcile``
    putting it back; its outcome is the last item, labelled ``drift``.
    """
    notebook = (notebook or default_notebook()).resolve()
    if not notebook.is_file():
        raise DemoError(f"runbook {notebook} not found; pass --notebook PATH")
    check_extras()
    from orbits_nb.actions.receiver import WebhookReceiver
    from orbits_nb.aws.emulator import Emulator

    out = (out or default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    email = f"aws+{client}@{TAKEN_EMAIL_DOMAIN if fail else 'example.com'}"
    state = out / "state.duckdb"
    params = {"client": client, "email": email, "region": region,
              "git_location": str(out / "repos"),
              "template_file": str(notebook.parent / "assets" / "backend.yaml"),
              "migrations": str(notebook.parent / "assets" / "migrations"),
              "database_url": f"duckdb://{out / (client + '.duckdb')}"}
    echo(f"orbits-nb demo: output in {out}")
    emulator = Emulator(region=region, account_delay=account_delay,
                        taken_emails=[email] if fail else [], log_path=out / "moto.log")
    receiver = WebhookReceiver(record_to=out / "alerts.jsonl")
    runs: list[DemoRun] = []
    with emulator, receiver, emulator.activated(), _environ(
            SLACK_WEBHOOK_URL=receiver.url, ORBITS_NB_STATE=str(state)):
        echo(f"  local AWS emulator (moto) on {emulator.endpoint}; organization "
             f"{emulator.create_organization()}")
        echo(f"  local webhook receiver on {receiver.address}")
        for label in ("first", "second"):
            echo(f"  executing {notebook.name} ({label} time) ...")
            done = _execute(notebook, out / f"deploy_backend.{label}.ipynb", params, state)
            done.label = label
            done.accounts = sum(a["Email"] == email for a in emulator.accounts())
            runs.append(done)
            echo(_describe(done))
        if drift and all(r.ok for r in runs):
            account = next(a["Id"] for a in emulator.accounts() if a["Email"] == email)
            runs.append(show_drift(echo, state, client, str(account), region))
        alerts = receiver.payloads
    _report(echo, runs, alerts, out, state)
    return runs


def show_drift(echo: Any, state: Path, client: str, account: str, region: str) -> DemoRun:
    """Change the backend's SSM parameter by hand, then drift (exit 1) and reconcile."""
    from orbits_nb.aws.executor import AccountExecutor
    from orbits_nb.cli import main as cli_main

    started = time.monotonic()
    name = f"/{client}/backend/database-url"
    ssm = AccountExecutor(account_id=account, region=region).context().client("ssm")
    ssm.put_parameter(Name=name, Value="postgresql://changed-by-hand/db", Type="String",
                      Overwrite=True)
    echo(f"  changed SSM parameter {name} by hand in account {account}")
    cli = ["--state", str(state)]
    echo("  $ orbits-nb drift")
    drifted = cli_main([*cli, "drift"])
    echo(f"  (exit {drifted})")
    echo("  $ orbits-nb reconcile")
    reconciled = cli_main([*cli, "reconcile"])
    echo(f"  (exit {reconciled})")
    value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    echo(f"  {name} is back to {value!r}")
    echo("  $ orbits-nb drift")
    after = cli_main([*cli, "drift"])
    echo(f"  (exit {after})")
    ok = drifted == 1 and reconciled == 0 and after == 0
    return DemoRun("drift", state, ok, time.monotonic() - started, 1,
                   "" if ok else f"drift exit {drifted}, reconcile exit {reconciled}")


def _execute(notebook: Path, output: Path, params: dict[str, Any], state: Path) -> DemoRun:
    from orbits_nb.runbooks import run as run_runbook

    started = time.monotonic()
    record = run_runbook(notebook, params, output=output, state=state)
    error = ""
    if not record.ok and record.error:
        error = f"{record.error.get('type')}: {record.error.get('message')}"
    return DemoRun("", output, record.ok, time.monotonic() - started, 0, error,
                   _steps(state, params["client"]))


def _steps(state: Path, client: str) -> list[dict[str, Any]]:
    """The steps of the client's latest DeployBackend run, with how often each ran."""
    from orbits_nb.core.state import fold
    from orbits_nb.store import open_store

    store = open_store(state)
    out: list[dict[str, Any]] = []
    try:
        with store.keep_open():
            for row in store.recent_runs(workflow="DeployBackend", limit=1000):
                events = store.load_run(row.run_id)
                run = fold(row.run_id, events)
                if run.args.get("client") != client:
                    continue
                for step in run.ordered_steps():
                    started = sum(e.kind == "step.started" and e.step == step.key
                                  for e in events)
                    out.append({"run_id": row.run_id, "step": step.key,
                                "status": step.status, "executions": started})
                break
    finally:
        store.close()
    return out


def _describe(run: DemoRun) -> str:
    status = "succeeded" if run.ok else f"failed ({run.error})"
    steps = ", ".join(f"{s['step']}={s['status']}" for s in run.steps) or "no steps"
    return (f"    {status} in {run.seconds:.1f}s; steps: {steps}; AWS accounts for the "
            f"client: {run.accounts}")


def _report(echo: Any, runs: list[DemoRun], alerts: list[Any], out: Path,
            state: Path) -> None:
    echo("  servers stopped.")
    runs = [run for run in runs if run.label != "drift"]
    if len(runs) == 2 and runs[0].ok and runs[1].ok:
        once = all(s["executions"] == 1 for s in runs[1].steps)
        what = "every step replayed from the store" if once else "some steps ran again"
        echo(f"  second execution: {what}; AWS accounts for the client: "
             f"{runs[1].accounts}.")
    for alert in alerts:
        echo(f"  alert received by the webhook: {json.dumps(alert)[:300]}")
    run_id = runs[0].steps[0]["run_id"] if runs and runs[0].steps else None
    echo("\nExecuted notebooks (open them in JupyterLab; the report cell at the end of "
         "each shows its run live):")
    for run in runs:
        echo(f"  {run.output}")
    echo(f"State: {state}")
    cli = _cli_name()
    echo(f"  {cli} --state {state} runs")
    if run_id:
        echo(f"  {cli} --state {state} show {run_id} --logs")


def _cli_name() -> str:
    """How the user can call the CLI: plain ``orbits-nb`` when it is on PATH."""
    beside = Path(sys.executable).with_name("orbits-nb")
    on_path = shutil.which("orbits-nb")
    if on_path and Path(on_path).resolve() == beside.resolve():
        return "orbits-nb"
    return str(beside) if beside.exists() else "orbits-nb"


class _environ:
    """Set environment variables for a block, then restore them."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    """``python -m orbits_nb.demo``: the same as ``orbits-nb demo``."""
    from orbits_nb.cli import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

