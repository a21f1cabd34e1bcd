"""Headless execution of a runbook: validate, execute with papermill, record, report.

Everything the user can get wrong (notebook, parameters, kernel, output path) is
checked by :func:`prepare` before a kernel starts or anything is written to the store.
:func:`execute` then records the notebook run, executes the notebook, and completes
the record whatever happens: a failing cell, ``sys.exit``, a timeout, a kernel killed
mid-cell, or the runner being interrupted.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbits_nb.core.serde import dumps
from orbits_nb.runbooks import kernel as kenv
from orbits_nb.runbooks import notebook as nbfile
from orbits_nb.runbooks import records
from orbits_nb.runbooks.errors import NotebookError, RunbookError
from orbits_nb.runbooks.parameters import Signature, secret_default, signature_of
from orbits_nb.runbooks.records import NotebookRun
from orbits_nb.runbooks.values import Values, from_cli, validate
from orbits_nb.store.duckdb_store import DuckDBStore
from orbits_nb.store.location import ENV_VAR as STATE_ENV
from orbits_nb.store.location import default_state_path, project_root

OUTPUT_ENV = "ORBITS_NB_OUTPUT"
DEFAULT_KERNEL = "python3"


@dataclass
class Job:
    """A validated runbook execution, ready to start."""

    notebook: Path
    signature: Signature
    values: Values
    record: NotebookRun
    output_path: Path
    state_path: Path
    kernel_name: str
    cell_timeout: float | None = None
    start_timeout: float = 60.0
    progress: bool = False
    log_output: bool = False


def new_id(runbook: str, now: float | None = None) -> str:
    """``<runbook>-<YYYYmmddTHHMMSS>-<4 hex>``: sortable, readable, unique."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now or time.time()))
    return f"{runbook}-{stamp}-{_random.token_hex(2)}"


def output_path_for(notebook: Path, notebook_run_id: str, started: float,
                    output_dir: str | Path | None = None) -> Path:
    """``<output dir>/<runbook>/<YYYY-MM-DD>/<notebook run id>.ipynb``.

    The output dir is ``output_dir``, else ``$ORBITS_NB_OUTPUT``, else ``output/`` in
    the notebook's project root (the folder holding ``.git`` or ``pyproject.toml``).
    """
    base = Path(output_dir or os.environ.get(OUTPUT_ENV) or
                project_root(notebook.parent) / "output").expanduser().resolve()
    day = time.strftime("%Y-%m-%d", time.localtime(started))
    return base / nbfile.runbook_name(notebook) / day / f"{notebook_run_id}.ipynb"


def state_path_for(notebook: Path, state: str | Path | None = None) -> Path:
    """The state file: ``state``, else ``$ORBITS_NB_STATE``, else the notebook's project's."""
    if state:
        return Path(state).expanduser().resolve()
    if os.environ.get(STATE_ENV):
        return default_state_path()
    return default_state_path(notebook.parent)


def prepare(notebook: str | Path, parameters: dict[str, Any] | None = None, *,
            cli: list[tuple[str, str]] | None = None, output: str | Path | None = None,
            output_dir: str | Path | None = None, state: str | Path | None = None,
            kernel: str | None = None, cell_timeout: float | None = None,
            start_timeout: float = 60.0, trigger: str = "api",
            schedule_id: str | None = None, scheduled_for: float | None = None,
            resume_of: str | None = None, attempt: int = 1,
            notebook_run_id: str | None = None, progress: bool = False,
            log_output: bool = False) -> Job:
    """Validate everything about a run before anything starts; raise on bad input."""
    path = nbfile.resolve(notebook)
    data = nbfile.load(path)
    sig = signature_of(path, data)
    given = dict(parameters or {})
    given.update(from_cli(sig, cli or []))
    values = validate(sig, given)
    kernel_name = kernel or _notebook_kernel(data)
    _check_kernel(kernel_name)
    if cell_timeout is not None and cell_timeout <= 0:
        raise RunbookError(f"cell timeout must be positive, got {cell_timeout}")
    runbook = nbfile.runbook_name(path)
    started = time.time()
    run_id = notebook_run_id or new_id(runbook, started)
    target = (Path(output).expanduser().resolve() if output
              else output_path_for(path, run_id, started, output_dir))
    if target.suffix != ".ipynb":
        raise RunbookError(f"output {str(target)!r} must be a .ipynb file")
    if target.resolve() == path:
        raise RunbookError(f"output {target} would overwrite the runbook itself")
    record = NotebookRun(
        notebook_run_id=run_id, runbook=runbook, notebook=str(path),
        parameters=values.recorded(), trigger=trigger, schedule_id=schedule_id,
        scheduled_for=scheduled_for, resume_of=resume_of, attempt=attempt,
        started_at=started, output_path=str(target), pid=os.getpid())
    return Job(path, sig, values, record, target, state_path_for(path, state), kernel_name,
               cell_timeout, start_timeout, progress, log_output)


def _notebook_kernel(data: dict[str, Any]) -> str:
    spec = data.get("metadata", {}).get("kernelspec", {})
    name = spec.get("name") if isinstance(spec, dict) else None
    return str(name) if name else DEFAULT_KERNEL


def _check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(name)
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise NotebookError(f"no Jupyter kernel named {name!r} (installed: {known}); pass "
                            "--kernel NAME or install it (python -m ipykernel install "
                            "--user --name NAME)", kernel=name) from None


def kernel_env(job: Job) -> dict[str, str]:
    """The kernel's environment: ours, plus the run's context; secrets by variable only."""
    record = job.record
    env = dict(os.environ)
    secret_vars: dict[str, str] = {}
    for name, secret in job.values.secrets.items():
        if secret.env_var is not None:
            secret_vars[name] = secret.env_var
        else:
            variable = kenv.secret_env_var(name)
            env[variable] = secret.reveal()
            secret_vars[name] = variable
    package_parent = str(Path(__file__).resolve().parents[2])
    # The kernel must import this very orbits_nb, even from a clone that is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env.update({
        STATE_ENV: str(job.state_path),
        kenv.ENV_HEADLESS: "1",
        kenv.ENV_NOTEBOOK: str(job.notebook),
        kenv.ENV_RUN: record.notebook_run_id,
        kenv.ENV_PARAMETERS: dumps(job.values.masked()),
        kenv.ENV_SECRETS: json.dumps(secret_vars),
        kenv.ENV_OUTPUT: str(job.output_path),
        kenv.ENV_SCHEDULE: record.schedule_id or "",
        kenv.ENV_SCHEDULED_FOR: "" if record.scheduled_for is None
        else repr(record.scheduled_for),
    })
    return env


def secret_values(values: Values, signature: Signature | None = None) -> list[str]:
    """The clear values of every secret of the run, longest first (for masking).

    The secrets given for this run, and what the secret parameters of ``signature``
    get from their defaults when they are not given (a literal, or an environment
    variable named by ``Secret.from_env``): the kernel may print either.
    """
    found = []
    for secret in values.secrets.values():
        try:
            value = secret.reveal()
        except Exception:  # an unset variable was already reported by validate()
            continue
        if value:
            found.append(value)
    if signature is not None:
        found += [default for param in signature.parameters.values()
                  if (default := secret_default(param)) is not None]
    return sorted(set(found), key=len, reverse=True)


def notebook_label(job: Job) -> str:
    try:
        return str(job.notebook.relative_to(project_root(job.notebook.parent)))
    except ValueError:
        return str(job.notebook)


def execute(job: Job) -> NotebookRun:
    """Record, execute and report one notebook run; return its completed record."""
    from orbits_nb.runbooks import outcome

    store = DuckDBStore(job.state_path)
    with records.held(store):
        records.reap_orphans(store)
        if job.record.schedule_id:
            from orbits_nb.runbooks import schedules

            schedules.claim_for_run(store, job.record)
        records.insert(store, job.record)
    try:
        return outcome.run_and_record(job, store)
    finally:
        if job.record.schedule_id:
            from orbits_nb.runbooks import schedules

            schedules.release(store, job.record.schedule_id, job.record.notebook_run_id)
        store.close()


def run(notebook: str | Path, parameters: dict[str, Any] | None = None, *,
        check: bool = False, **options: Any) -> NotebookRun:
    """Execute a runbook headlessly and return its :class:`NotebookRun` record.

    Options are those of :func:`prepare` (``output``, ``output_dir``, ``state``,
    ``kernel``, ``cell_timeout``, ...). ``check=True`` raises
    :class:`~orbits_nb.runbooks.RunbookFailed` when the notebook fails.

    >>> from orbits_nb import runbooks
    >>> nr = runbooks.run("notebooks/quickstart.ipynb", {"client": "acme"})  # doctest: +SKIP
    >>> nr.status, nr.output_path                                            # doctest: +SKIP
    ('succeeded', '.../output/quickstart/2026-11-26/quickstart-20261126T101500-1a2b.ipynb')
    """
    record = execute(prepare(notebook, parameters, **options))
    return record.raise_for_status() if check else record
