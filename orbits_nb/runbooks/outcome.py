"""Executing the prepared notebook and turning whatever happened into a record."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from orbits_nb.core import masking
from orbits_nb.core.masking import MaskingStream
from orbits_nb.runbooks import kernel as kenv
from orbits_nb.runbooks import records, report
from orbits_nb.runbooks.execute import kernel_env, notebook_label, secret_values

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store
    from orbits_nb.runbooks._papermill import Hooks
    from orbits_nb.runbooks.execute import Job
    from orbits_nb.runbooks.records import NotebookRun

_SOURCE_LINES = 40


class _Tee:
    """Writes to several text streams (the console and a file)."""

    def __init__(self, streams: list[Any]) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def _streams(job: Job) -> Iterator[dict[str, MaskingStream]]:
    """papermill's ``stdout_file``/``stderr_file``, secrets masked: the console on
    stderr (``--log-output``, where papermill logs cell output) and the files asked for
    (``--stdout-file``/``--stderr-file``, with the run's output mode)."""
    with contextlib.ExitStack() as stack:
        found: dict[str, MaskingStream] = {}
        for name in ("stdout_file", "stderr_file"):
            targets: list[Any] = [sys.stderr] if job.log_output else []
            given = getattr(job.papermill, name)
            if isinstance(given, (str, Path)):
                targets.append(stack.enter_context(_open_log(Path(given).expanduser(),
                                                             job.output.mode)))
            elif given is not None:
                targets.append(given)
            if targets:
                found[name] = MaskingStream(_Tee(targets))
        try:
            yield found
        finally:
            for stream in found.values():
                stream.close()  # what was held back, before the files close


def _open_log(path: Path, mode: int | None) -> IO[str]:
    """A log file opened as papermill opens it (the umask applies), or with ``mode``."""
    handle = path.open("w", encoding="utf-8")
    if mode is not None:
        os.fchmod(handle.fileno(), mode)
    return handle


@contextlib.contextmanager
def papermill_log() -> Iterator[None]:
    """Silence papermill's log lines that the runner says itself, before a kernel starts
    (an undeclared parameter, no parameters cell) or better (the input and output:
    papermill is handed a local file and no output)."""
    logger = logging.getLogger("papermill")
    said = _Said()
    logger.addFilter(said)
    try:
        yield
    finally:
        logger.removeFilter(said)


class _Said(logging.Filter):
    PREFIXES = ("Passed unknown parameter:", "Input notebook does not contain a cell with tag",
                "Input Notebook:", "Output Notebook:", "Working directory:")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


#: ipykernel's start-up warnings (TCP on loopback) are noise in a report; its history
#: stays in memory, as nbclient keeps it.
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)
HISTORY_ARGUMENT = "--HistoryManager.hist_file=:memory:"


def start_kernel(job: Job) -> Any:
    """Start the run's kernel now, as nbclient would start it: it boots (a second or
    so) while the runner records the run and imports papermill, instead of after.

    Returns its kernel manager, or None when it cannot start here (nbclient then tries
    again, and the failure is recorded with the run).
    """
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    try:
        manager = AsyncKernelManager(kernel_name=job.kernel_name)
        arguments = [*KERNEL_ARGUMENTS, *([HISTORY_ARGUMENT] if manager.ipykernel else [])]
        run_sync(manager.start_kernel)(extra_arguments=arguments, env=kernel_env(job),
                                       cwd=str(job.working_directory()))
    except Exception:  # nbclient's own start raises it again, inside the recorded run
        return None
    return manager


def stop_kernel(manager: Any) -> None:
    """Stop a kernel :func:`start_kernel` started if it still runs (the run ended
    before nbclient took it over, or nbclient left it)."""
    from jupyter_core.utils import run_sync

    if manager is None or not manager.has_kernel:
        return
    with contextlib.suppress(Exception):  # already gone: nothing to stop
        run_sync(manager.shutdown_kernel)(now=True)


def run_and_record(job: Job, store: Store, kernel: Any = None) -> NotebookRun:
    """Execute ``job`` (already recorded as running) and complete its record; ``kernel``
    is the manager of a kernel :func:`start_kernel` started for it, if any."""
    import papermill

    from orbits_nb.runbooks._papermill import Hooks, register

    record = job.record
    secrets = secret_values(job.values, job.signature)
    # The runner masks these in everything it writes (store, notebook, console).
    masking.remember_all(secrets)
    options = job.papermill

    def kernel_started(pid: int) -> None:
        record.kernel_pid = pid
        records.set_kernel_pid(store, record.notebook_run_id, pid)

    saves = options.request_save_on_cell_execute and not job.output.to_stdout
    hooks = Hooks(env=kernel_env(job), cwd=job.working_directory(),
                  secrets=secrets, header=report.header(record, notebook_label(job)),
                  bootstrap=kenv.bootstrap_source() if _has_secrets(job) else None,
                  on_kernel=kernel_started, input_path=job.source,
                  output=job.output.given or str(job.output),
                  save=job.output.write if saves else None, kernel=kernel)
    failure: BaseException | None = None
    try:
        job.output.make_room()
        with _streams(job) as streams, papermill_log():
            # papermill itself writes nothing (output None): its own saves would not be
            # scrubbed of secrets; the engine saves through `hooks.save` instead.
            papermill.execute_notebook(
                str(job.notebook), None, parameters=job.values.public,
                engine_name=register(), kernel_name=job.kernel_name,
                language=options.language, progress_bar=job.progress,
                start_timeout=job.start_timeout, execution_timeout=job.cell_timeout,
                report_mode=options.report_mode,
                autosave_cell_every=options.autosave_cell_every, orbits_hooks=hooks,
                **streams)
    except BaseException as err:  # recorded below; interrupts are raised again after
        failure = err
    with records.held(store):
        finish(job, store, hooks, failure)
    if failure is not None and not isinstance(failure, Exception):
        raise failure
    return record


def _has_secrets(job: Job) -> bool:
    return bool(job.values.secrets) or any(
        p.secret for p in job.signature.parameters.values())


def finish(job: Job, store: Store, hooks: Hooks, failure: BaseException | None) -> None:
    """Complete the record and the executed notebook after the kernel is gone."""
    import nbformat

    record = job.record
    secrets = hooks.secrets
    nb = hooks.nb
    status, cell, error = classify(nb, failure)
    record.status = status
    record.failed_cell = cell
    record.error = report.scrub(error, secrets) if error else None
    record.kernel_pid = record.kernel_pid or hooks.kernel_pid
    record.finished_at = time.time()
    record.duration_s = record.finished_at - (record.started_at or record.finished_at)
    record.workflow_runs = records.started_runs(store, record)
    why = (f"the kernel of notebook run {record.notebook_run_id} died"
           if error and error["type"] == "KernelDied" else
           f"notebook run {record.notebook_run_id} ended ({status}) before this run did; "
           "wait for runs in the runbook (run.wait() or await run)")
    records.reap_runs(store, record.workflow_runs, why)
    if nb is not None:
        _complete_notebook(nbformat, job, store, nb)
        if job.papermill.report_mode:
            _hide_inputs(nb)
        report.scrub(nb, secrets)
        _write(job, nb, secrets)
    records.update(store, record)


def _write(job: Job, nb: Any, secrets: list[str]) -> None:
    try:
        job.output.write(nb)
    except Exception as err:  # the run is recorded all the same, with why it has no output
        record = job.record
        message = report.scrub(f"cannot write the executed notebook to {job.output}: "
                               f"{type(err).__name__}: {err}", secrets)
        record.status = "failed"
        record.error = record.error or {"type": "OutputError", "message": message,
                                        "traceback": "", "source": "",
                                        "execution_count": None}


def _hide_inputs(nb: Any) -> None:
    """papermill's report mode, for the cells added after it ran too."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True


def _complete_notebook(nbformat: Any, job: Job, store: Store, nb: Any) -> None:
    from orbits_nb.engine.engine import Engine

    record = job.record
    heads = [c for c in nb.cells if report.HEADER_TAG in c.get("metadata", {}).get("tags", [])]
    for cell in heads:
        cell.source = report.header(record, notebook_label(job))
    # Our header first (papermill puts its error banner on top), old reports out.
    seen = {id(c) for c in heads}
    nb.cells = heads + [c for c in nb.cells if id(c) not in seen and report.REPORT_TAG
                        not in c.get("metadata", {}).get("tags", [])]
    engine = Engine(store)
    nb.cells += report.report_cells(nbformat, engine, record.workflow_runs,
                                    job.output_path)
    nb.metadata["orbits_nb"] = {
        "notebook_run_id": record.notebook_run_id, "runbook": record.runbook,
        "status": record.status, "parameters": record.masked_parameters(),
        "workflow_runs": record.workflow_runs, "failed_cell": record.failed_cell,
    }


def classify(nb: Any, failure: BaseException | None) -> tuple[str, int | None,
                                                               dict[str, Any] | None]:
    """``(status, failing cell index in the runbook, error)`` of a finished execution."""
    if failure is None:
        return "succeeded", None, None
    cells = list(nb.cells) if nb is not None else []
    name = type(failure).__name__
    if name == "PapermillExecutionError":
        for cell in cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and not _clean_exit(output):
                    return "failed", _index(cells, cell), _error(
                        cell, str(output.get("ename")), str(output.get("evalue")),
                        "\n".join(report.strip_ansi(t) for t in output.get("traceback", [])))
    current = _last_started(cells)
    position = _index(cells, current) if current is not None else None
    where = f" while executing cell {position}" if position is not None else ""
    kind, message = {
        "DeadKernelError": ("KernelDied", f"the kernel died{where}"),
        "CellTimeoutError": ("CellTimeout", f"{report.strip_ansi(str(failure))}{where}"),
        "KeyboardInterrupt": ("Interrupted", f"the runner was interrupted{where}"),
    }.get(name, (name, f"{report.strip_ansi(str(failure))}{where}"))
    if isinstance(failure, SystemExit):
        kind, message = "Interrupted", f"the runner was stopped{where}"
    return "failed", position, _error(current, kind, message, "")


def _clean_exit(output: dict[str, Any]) -> bool:
    return output.get("ename") == "SystemExit" and output.get("evalue") in ("", "0")


def _error(cell: Any, kind: str, message: str, traceback: str) -> dict[str, Any]:
    source = "" if cell is None else str(cell.get("source", ""))
    lines = source.splitlines()
    if len(lines) > _SOURCE_LINES:
        lines = [*lines[:_SOURCE_LINES], "..."]
    count = None if cell is None else cell.get("execution_count")
    return {"type": kind, "message": message, "traceback": traceback,
            "source": "\n".join(lines), "execution_count": count}


def _inserted(cell: Any) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return any(tag in report.INSERTED_TAGS for tag in tags)


def _index(cells: list[Any], target: Any) -> int | None:
    """Position of ``target`` among the runbook's own cells (inserted ones skipped)."""
    position = 0
    for cell in cells:
        if cell is target:
            return None if _inserted(cell) else position
        if not _inserted(cell):
            position += 1
    return None


def _last_started(cells: list[Any]) -> Any:
    started = None
    for cell in cells:
        if cell.get("cell_type") == "code" and \
                cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            started = cell
    return started
