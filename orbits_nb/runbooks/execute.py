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
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbits_nb.core.serde import dumps
from orbits_nb.core.storage import Store
from orbits_nb.runbooks import destination, records
from orbits_nb.runbooks import kernel as kenv
from orbits_nb.runbooks import notebook as nbfile
from orbits_nb.runbooks.checks import (
    Papermill,
    check_kernel,
    check_language,
    check_mode,
    check_seconds,
    kernel_for,
    papermill_options,
)
from orbits_nb.runbooks.destination import Destination
from orbits_nb.runbooks.errors import RunbookWarning
from orbits_nb.runbooks.parameters import Signature, secret_default, signature_of
from orbits_nb.runbooks.records import NotebookRun
from orbits_nb.runbooks.values import Values, from_cli, validate
from orbits_nb.store import open_store
from orbits_nb.store.location import ENV_VAR as STATE_ENV
from orbits_nb.store.location import project_root, state_location

__all__ = ["Job", "Papermill", "Reading", "check_kernel", "check_seconds", "execute",
           "prepare", "prepare_only", "run"]

OUTPUT_ENV = "ORBITS_NB_OUTPUT"
INPUT_PARAMETER = "PAPERMILL_INPUT_PATH"
OUTPUT_PARAMETER = "PAPERMILL_OUTPUT_PATH"


@dataclass
class Job:
    """A validated runbook execution, ready to start.

    ``notebook`` is the local file that runs (for a URL, a private copy that
    :func:`execute` removes); ``source`` the notebook as given (what papermill records
    as its input path); ``notes`` where the run departs from what papermill would
    inject for the same command line (see :mod:`orbits_nb.runbooks.values`).
    """

    notebook: Path
    signature: Signature
    values: Values
    record: NotebookRun
    output: Destination
    state_path: Path | str
    kernel_name: str
    cell_timeout: float | None = None
    start_timeout: float = 60.0
    progress: bool = False
    log_output: bool = False
    papermill: Papermill = field(default_factory=Papermill)
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def output_path(self) -> Path | None:
        """The local output file (None when the output is stdout or a URL)."""
        return self.output.path

    @property
    def remote(self) -> bool:
        """The notebook was read from a URL (what runs is a private copy)."""
        return nbfile.is_url(self.record.notebook)

    def working_directory(self) -> Path:
        """Where the kernel runs: ``cwd``, else the notebook's folder; a notebook read
        from a URL has none, so the runner's working directory, as with papermill."""
        if self.papermill.cwd is not None:
            return Path(self.papermill.cwd)
        return Path.cwd() if self.remote else self.notebook.parent

    def discard(self) -> None:
        """Remove the private copy of a notebook read from a URL (idempotent)."""
        if self.remote:
            nbfile.discard(self.notebook)


@dataclass(frozen=True)
class Reading:
    """How the given parameters are read (see :mod:`orbits_nb.runbooks.values`)."""

    undeclared: str = "near"
    raw_types: bool = False
    inject_input_path: bool = False
    inject_output_path: bool = False


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


def state_path(state: str | Path | None = None) -> Path | str:
    """The state file (or team store URL): ``state``, else the one every command uses
    (``$ORBITS_NB_STATE``, else from the working directory upwards), whatever folder
    the notebook is in."""
    if isinstance(state, str) and state.lower().startswith(("postgresql://",
                                                            "postgres://")):
        return state
    if state:
        return Path(state).expanduser().resolve()
    return state_location()


def prepare(notebook: str | Path, parameters: dict[str, Any] | None = None, *,
            cli: list[tuple[str, str]] | None = None, output: str | Path | None = None,
            output_dir: str | Path | None = None, state: str | Path | None = None,
            kernel: str | None = None, cell_timeout: float | None = None,
            start_timeout: float = 60.0, trigger: str = "api",
            schedule_id: str | None = None, scheduled_for: float | None = None,
            resume_of: str | None = None, attempt: int = 1,
            notebook_run_id: str | None = None, progress: bool = False,
            log_output: bool = False, undeclared: str = "near", raw_types: bool = False,
            inject_input_path: bool = False, inject_output_path: bool = False,
            output_mode: int | None = None, **papermill: Any) -> Job:
    """Validate everything about a run before anything starts; raise on bad input.

    ``notebook`` is a ``.ipynb`` path or a URL read by a papermill I/O handler.
    ``output`` is a ``.ipynb`` path, ``"-"`` (stdout) or a URL written by a papermill
    I/O handler (``s3://...``); it may name parameters (``out/{client}.ipynb``).
    ``output_mode`` gives a local output file these permission bits (e.g. ``0o600``)
    instead of papermill's (the umask). ``undeclared`` (``"near"``, ``"inject"`` or
    ``"refuse"``) and ``raw_types`` say how parameters are read (see
    :mod:`orbits_nb.runbooks.values`); ``inject_input_path``/``inject_output_path``
    add papermill's ``PAPERMILL_INPUT_PATH``/``PAPERMILL_OUTPUT_PATH`` parameters.
    Further keyword arguments are papermill's: ``cwd``, ``report_mode``,
    ``request_save_on_cell_execute``, ``autosave_cell_every``, ``stdout_file``,
    ``stderr_file`` (a path or an open text file), ``language``, ``engine``.
    """
    check_seconds("cell timeout", cell_timeout, allow_none=True)
    check_seconds("start timeout", start_timeout)
    options = papermill_options(papermill)
    mode = check_mode(output_mode)
    reading = Reading(undeclared, raw_types, inject_input_path, inject_output_path)
    source = str(notebook)
    remote = nbfile.is_url(source)
    path = nbfile.fetch(source) if remote else nbfile.resolve(notebook)
    try:
        data = nbfile.load(path)
        sig = signature_of(path, data)
        started = time.time()
        run_id = notebook_run_id or new_id(nbfile.runbook_name(path), started)
        default = None if output is not None else output_path_for(path, run_id, started,
                                                                  output_dir)
        values, notes = _read(sig, parameters, cli, reading, source, output or default)
        kernel_name = kernel_for(path, data, kernel)
        check_language(path, data, options.language, bool(values.public))
        target = (destination.resolve(output, path, values.public, mode)
                  if output is not None else Destination(
                      str(destination.check_local(Path(str(default)), path)), str(default),
                      mode))
    except BaseException:
        if remote:
            nbfile.discard(path)
        raise
    record = NotebookRun(
        notebook_run_id=run_id, runbook=nbfile.runbook_name(path),
        notebook=source if remote else str(path), parameters=values.recorded(),
        trigger=trigger, schedule_id=schedule_id, scheduled_for=scheduled_for,
        resume_of=resume_of, attempt=attempt, started_at=started, output_path=str(target),
        pid=os.getpid())
    return Job(path, sig, values, record, target, state_path(state), kernel_name,
               cell_timeout, start_timeout, progress, log_output, options, source, notes)


def _read(sig: Signature, parameters: dict[str, Any] | None,
          cli: list[tuple[str, str]] | None, reading: Reading, source: str,
          output: str | Path | None) -> tuple[Values, list[str]]:
    """The run's values, merged as papermill merges them, and what departs from it."""
    injected: dict[str, Any] = {}
    if reading.inject_input_path:
        injected[INPUT_PARAMETER] = source
    if reading.inject_output_path:
        injected[OUTPUT_PARAMETER] = str(output)
    given = {**injected, **(parameters or {})}
    notes: list[str] = []
    given.update(from_cli(sig, cli or [], undeclared=reading.undeclared,
                          raw_types=reading.raw_types, notes=notes))
    values = validate(sig, given, undeclared=reading.undeclared,
                      raw_types=reading.raw_types, quiet=injected)
    return values, notes + values.notes


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
        # Where the runbook comes from (a URL stays a URL, so resume reads it again),
        # and the file the kernel reads its parameters cell from.
        kenv.ENV_NOTEBOOK: record.notebook,
        kenv.ENV_NOTEBOOK_FILE: str(job.notebook),
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
    if job.remote:
        return job.record.notebook
    try:
        return str(job.notebook.relative_to(project_root(job.notebook.parent)))
    except ValueError:
        return str(job.notebook)


def execute(job: Job) -> NotebookRun:
    """Record, execute and report one notebook run; return its completed record."""
    from orbits_nb.runbooks import outcome

    # The kernel boots while the runner records the run and imports papermill.
    kernel = outcome.start_kernel(job)
    try:
        store = _record_while_papermill_loads(job)
        try:
            return outcome.run_and_record(job, store, kernel)
        finally:
            if job.record.schedule_id:
                from orbits_nb.runbooks import schedules

                schedules.release(store, job.record.schedule_id, job.record.notebook_run_id)
            store.close()
    finally:
        outcome.stop_kernel(kernel)
        job.discard()


def _record_while_papermill_loads(job: Job) -> Store:
    """Open the store and record the run as running, in a thread, while this thread
    imports papermill: most of a short run's time is that import, and DuckDB does its
    work outside the GIL. (Nothing papermill imports imports orbits_nb, so the two
    threads never wait for each other's modules.)"""
    opened: list[Store] = []
    failed: list[BaseException] = []

    def record() -> None:
        try:
            opened.append(_recorded(job))
        except BaseException as err:  # raised again in the calling thread
            failed.append(err)

    worker = threading.Thread(target=record, name="orbits-nb-record", daemon=True)
    worker.start()
    try:
        import papermill  # noqa: F401
    except BaseException:
        worker.join()
        for store in opened:
            store.close()
        raise
    worker.join()
    if failed:
        raise failed[0]
    return opened[0]


def _recorded(job: Job) -> Store:
    store = open_store(job.state_path)
    try:
        with records.held(store):
            records.reap_orphans(store)
            if job.record.schedule_id:
                from orbits_nb.runbooks import schedules

                schedules.claim_for_run(store, job.record)
            records.insert(store, job.record)
    except BaseException:
        store.close()
        raise
    return store


def prepare_only(job: Job) -> Destination:
    """Write the parameterized notebook without executing it (papermill's
    ``prepare_only``); nothing is recorded. Secret values are never written: the
    notebook gets their declared defaults."""
    import papermill

    from orbits_nb.runbooks.outcome import papermill_log

    try:
        with papermill_log():
            nb = papermill.execute_notebook(
                str(job.notebook), None, parameters=job.values.public, prepare_only=True,
                kernel_name=job.kernel_name, language=job.papermill.language,
                report_mode=job.papermill.report_mode, progress_bar=False)
        nb.metadata.papermill["input_path"] = job.source
        nb.metadata.papermill["output_path"] = job.output.given or str(job.output)
        job.output.write(nb)
    finally:
        job.discard()
    return job.output


def run(notebook: str | Path, parameters: dict[str, Any] | None = None, *,
        check: bool = False, **options: Any) -> NotebookRun:
    """Execute a runbook headlessly and return its :class:`NotebookRun` record.

    Options are those of :func:`prepare` (``output``, ``output_dir``, ``state``,
    ``kernel``, ``cell_timeout``, ``cwd``, ``report_mode``...). ``check=True`` raises
    :class:`~orbits_nb.runbooks.RunbookFailed` when the notebook fails. A parameter
    the notebook does not declare is injected with a
    :class:`~orbits_nb.runbooks.RunbookWarning` (a near miss of a declared name is
    refused unless ``undeclared="inject"``).

    >>> from orbits_nb import runbooks
    >>> nr = runbooks.run("notebooks/quickstart.ipynb", {"client": "acme"})  # doctest: +SKIP
    >>> nr.status, nr.output_path                                            # doctest: +SKIP
    ('succeeded', '.../output/quickstart/2026-11-26/quickstart-20261126T101500-1a2b.ipynb')
    """
    job = prepare(notebook, parameters, **options)
    for note in job.values.undeclared.values():  # papermill's API warns of these too
        warnings.warn(note, RunbookWarning, stacklevel=2)
    record = execute(job)
    return record.raise_for_status() if check else record
