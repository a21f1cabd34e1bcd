"""Headless execution of a runbook: validate, execute with papermill, record, report.

Everything the user can get wrong (notebook, parameters, kernel, output path) is
checked by :func:`prepare` before a kernel starts or anything is written to the store.
:func:`execute` then records the notebook run, executes the notebook, and completes
the record whatever happens: a failing cell, ``sys.exit``, a timeout, a kernel killed
mid-cell, or the runner being interrupted.
"""

from __future__ import annotations

import json
import math
import os
import secrets as _random
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any

from orbits_nb.core.serde import dumps
from orbits_nb.runbooks import destination, records
from orbits_nb.runbooks import kernel as kenv
from orbits_nb.runbooks import notebook as nbfile
from orbits_nb.runbooks.destination import Destination
from orbits_nb.runbooks.errors import NotebookError, RunbookError
from orbits_nb.runbooks.parameters import Signature, secret_default, signature_of
from orbits_nb.runbooks.records import NotebookRun
from orbits_nb.runbooks.values import Values, from_cli, validate
from orbits_nb.store import open_store
from orbits_nb.store.location import ENV_VAR as STATE_ENV
from orbits_nb.store.location import default_state_path, project_root

OUTPUT_ENV = "ORBITS_NB_OUTPUT"
DEFAULT_KERNEL = "python3"


@dataclass(frozen=True)
class Papermill:
    """papermill's execution options, as its command line has them."""

    cwd: Path | None = None
    report_mode: bool = False
    request_save_on_cell_execute: bool = True
    autosave_cell_every: int = 30
    stdout_file: str | Path | IO[str] | None = None
    stderr_file: str | Path | IO[str] | None = None


@dataclass
class Job:
    """A validated runbook execution, ready to start."""

    notebook: Path
    signature: Signature
    values: Values
    record: NotebookRun
    output: Destination
    state_path: Path
    kernel_name: str
    cell_timeout: float | None = None
    start_timeout: float = 60.0
    progress: bool = False
    log_output: bool = False
    papermill: Papermill = field(default_factory=Papermill)

    @property
    def output_path(self) -> Path | None:
        """The local output file (None when the output is stdout or a URL)."""
        return self.output.path


def new_id(runbook: str, now: float | None = None) -> str:
    """``<runbook>-<YYYYmmddTHHMMSS>-<4 hex>``: sortable, readable, unique."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now or time.time()))
    return f"{runbook}-{stamp}-{_random.token_hex(2)}"


def output_path_for(notebook: Path, notebook_run_id: str, started: float,
                    output_dir: str | Path | None = None) -> Path:
    """``<output dir>/<runbook>/<YYYY-MM-DD>/<notebook run id>.ipynb``.

    The output dir is ``output_dir``, else ``$ORBITS_NB_OUTPUT``, else ``output/`` in
    the project root found from the working directory, like the state file (so a
    runbook shipped inside an installed package never writes beside itself).
    """
    base = Path(output_dir or os.environ.get(OUTPUT_ENV) or
                project_root() / "output").expanduser().resolve()
    day = time.strftime("%Y-%m-%d", time.localtime(started))
    return base / nbfile.runbook_name(notebook) / day / f"{notebook_run_id}.ipynb"


def state_path(state: str | Path | None = None) -> Path:
    """The state file: ``state``, else the one every command uses (``$ORBITS_NB_STATE``,
    else from the working directory upwards), whatever folder the notebook is in."""
    if state:
        return Path(state).expanduser().resolve()
    return default_state_path()


def prepare(notebook: str | Path, parameters: dict[str, Any] | None = None, *,
            cli: list[tuple[str, str]] | None = None, output: str | Path | None = None,
            output_dir: str | Path | None = None, state: str | Path | None = None,
            kernel: str | None = None, cell_timeout: float | None = None,
            start_timeout: float = 60.0, trigger: str = "api",
            schedule_id: str | None = None, scheduled_for: float | None = None,
            resume_of: str | None = None, attempt: int = 1,
            notebook_run_id: str | None = None, progress: bool = False,
            log_output: bool = False, **papermill: Any) -> Job:
    """Validate everything about a run before anything starts; raise on bad input.

    ``output`` is a ``.ipynb`` path, ``"-"`` (stdout) or a URL written by a papermill
    I/O handler (``s3://...``); it may name parameters (``out/{client}.ipynb``).
    Further keyword arguments are papermill's: ``cwd``, ``report_mode``,
    ``request_save_on_cell_execute``, ``autosave_cell_every``, ``stdout_file``,
    ``stderr_file`` (a path or an open text file).
    """
    path = nbfile.resolve(notebook)
    data = nbfile.load(path)
    sig = signature_of(path, data)
    given = dict(parameters or {})
    given.update(from_cli(sig, cli or []))
    values = validate(sig, given)
    kernel_name = kernel or _notebook_kernel(data)
    check_kernel(kernel_name)
    check_seconds("cell timeout", cell_timeout, allow_none=True)
    check_seconds("start timeout", start_timeout)
    options = _papermill_options(papermill)
    runbook = nbfile.runbook_name(path)
    started = time.time()
    run_id = notebook_run_id or new_id(runbook, started)
    target = (destination.resolve(output, path, values.public) if output is not None
              else Destination(str(destination.check_local(
                  output_path_for(path, run_id, started, output_dir), path))))
    record = NotebookRun(
        notebook_run_id=run_id, runbook=runbook, notebook=str(path),
        parameters=values.recorded(), trigger=trigger, schedule_id=schedule_id,
        scheduled_for=scheduled_for, resume_of=resume_of, attempt=attempt,
        started_at=started, output_path=str(target), pid=os.getpid())
    return Job(path, sig, values, record, target, state_path(state), kernel_name,
               cell_timeout, start_timeout, progress, log_output, options)


def check_seconds(what: str, value: Any, allow_none: bool = False) -> None:
    """Refuse a duration that is not a positive number of seconds."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise RunbookError(f"{what} must be a positive number of seconds, got {value!r}")


def _papermill_options(given: dict[str, Any]) -> Papermill:
    known = {f.name for f in fields(Papermill)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise RunbookError(f"unknown option(s) {', '.join(unknown)}; papermill's options "
                           f"here are {', '.join(sorted(known))}")
    options = Papermill(**given)
    if options.cwd is not None:
        cwd = Path(options.cwd).expanduser().resolve()
        if not cwd.is_dir():
            raise RunbookError(f"working directory {str(options.cwd)!r} is not a folder "
                               "(cwd)", cwd=str(options.cwd))
        options = replace(options, cwd=cwd)
    every = options.autosave_cell_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise RunbookError(f"autosave_cell_every must be a whole number of seconds (0 "
                           f"turns it off), got {every!r}")
    for name in ("stdout_file", "stderr_file"):
        target = getattr(options, name)
        if isinstance(target, (str, Path)):
            _check_log_file(name, Path(target).expanduser())
    return options


def _check_log_file(name: str, path: Path) -> None:
    if path.is_dir():
        raise RunbookError(f"{name} {str(path)!r} is a folder; give a file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise RunbookError(f"{name} {str(path)!r}: no folder {str(folder)!r}")
    if not os.access(folder, os.W_OK):
        raise RunbookError(f"{name} {str(path)!r}: the folder is not writable")


def _notebook_kernel(data: dict[str, Any]) -> str:
    spec = data.get("metadata", {}).get("kernelspec", {})
    name = spec.get("name") if isinstance(spec, dict) else None
    return str(name) if name else DEFAULT_KERNEL


def check_kernel(name: str) -> None:
    """Refuse a kernel name that no installed Jupyter kernel has."""
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
        kenv.ENV_OUTPUT: str(job.output),
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

    store = open_store(job.state_path)
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


def prepare_only(job: Job) -> Destination:
    """Write the parameterized notebook without executing it (papermill's
    ``prepare_only``); nothing is recorded. Secret values are never written: the
    notebook gets their declared defaults."""
    import papermill

    nb = papermill.execute_notebook(
        str(job.notebook), None, parameters=job.values.public, prepare_only=True,
        kernel_name=job.kernel_name, report_mode=job.papermill.report_mode,
        progress_bar=False)
    job.output.write(nb)
    return job.output


def run(notebook: str | Path, parameters: dict[str, Any] | None = None, *,
        check: bool = False, **options: Any) -> NotebookRun:
    """Execute a runbook headlessly and return its :class:`NotebookRun` record.

    Options are those of :func:`prepare` (``output``, ``output_dir``, ``state``,
    ``kernel``, ``cell_timeout``, ``cwd``, ``report_mode``...). ``check=True`` raises
    :class:`~orbits_nb.runbooks.RunbookFailed` when the notebook fails.

    >>> from orbits_nb import runbooks
    >>> nr = runbooks.run("notebooks/quickstart.ipynb", {"client": "acme"})  # doctest: +SKIP
    >>> nr.status, nr.output_path                                            # doctest: +SKIP
    ('succeeded', '.../output/quickstart/2026-11-26/quickstart-20261126T101500-1a2b.ipynb')
    """
    record = execute(prepare(notebook, parameters, **options))
    return record.raise_for_status() if check else record
