"""Resume by notebook: re-execute the runbook that started a run, with its parameters.

A workflow defined in a notebook is recorded as ``__main__:Class`` and cannot be
imported elsewhere; re-executing its notebook defines it again, and durable replay
skips the steps that completed. Workflows defined in importable modules resume by
import instead. A notebook run id can be resumed too (same notebook, same parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import ActionNotFound, RunNotFound, RunOwned
from orbits_nb.core.serde import MASK
from orbits_nb.core.state import fold
from orbits_nb.runbooks import records
from orbits_nb.runbooks.execute import execute, prepare
from orbits_nb.runbooks.records import NotebookRun
from orbits_nb.store import open_store

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store


@dataclass
class Resumed:
    """The outcome of a resume: how it was done and where the workflow run stands."""

    target: str
    how: str  # "notebook", "import" or "nothing"
    run_id: str | None = None
    run_status: str | None = None
    notebook_run: NotebookRun | None = None
    result: Any = None

    @property
    def ok(self) -> bool:
        if self.notebook_run is not None and not self.notebook_run.ok:
            return False
        return self.run_id is None or self.run_status == "succeeded"


def resume(target: str, parameters: dict[str, Any] | None = None, *,
           state: str | Path | None = None, cli: list[tuple[str, str]] | None = None,
           by_import: bool = False, **options: Any) -> Resumed:
    """Resume the workflow run (or notebook run) ``target`` and wait for it.

    A run started by a runbook is resumed by executing that runbook again, unless
    ``by_import`` (its workflow class must then be importable). ``parameters``/``cli``
    override recorded ones; a secret given literally to the first run must be given
    again. Other options are those of :func:`~orbits_nb.runbooks.execute.prepare`
    (``output_dir``, ``kernel``, ...).
    """
    from orbits_nb.runbooks.execute import state_path

    path = state_path(state)
    store = open_store(path)
    try:
        records.reap_orphans(store)
        earlier = records.get(store, target)
        if earlier is not None:
            return _rerun(earlier, None, None, path, parameters=parameters, cli=cli,
                          options=options)
        run_id = _root(target)
        run = fold(run_id, store.load_run(run_id))
        if not run.workflow:
            raise RunNotFound(f"no workflow run or notebook run {target!r} in {path}; list "
                              "them with `orbits-nb runs` and `orbits-nb runs --notebooks`",
                              run_id=target)
        if run.status == "succeeded":
            return Resumed(target, "nothing", run_id, run.status, result=run.result)
        _check_owner(store, run_id)
        notebook_run_id = run.meta.get("notebook_run_id")
        earlier = records.get(store, notebook_run_id) if notebook_run_id else None
    finally:
        store.close()
    if by_import:
        return _by_import(target, run_id, path)
    if earlier is not None:
        return _rerun(earlier, run_id, None, path, parameters=parameters, cli=cli,
                      options=options)
    if run.meta.get("notebook"):
        return _rerun(None, run_id, run.meta, path, parameters=parameters, cli=cli,
                      options=options)
    return _by_import(target, run_id, path)


def _root(run_id: str) -> str:
    return run_id.split("/", 1)[0]


def _check_owner(store: Store, run_id: str) -> None:
    for lease in store.leases("run", [run_id]):
        if store.alive(lease.host, lease.pid, lease.heartbeat):
            raise RunOwned(f"run {run_id!r} is being executed by {lease.host} pid "
                           f"{lease.pid}; wait for it or stop that process before resuming",
                           run_id=run_id, owner=f"{lease.host}:{lease.pid}")


def _rerun(earlier: NotebookRun | None, run_id: str | None, meta: dict[str, Any] | None,
           state: Path | str, *, parameters: dict[str, Any] | None,
           cli: list[tuple[str, str]] | None, options: dict[str, Any]) -> Resumed:
    if earlier is not None:
        notebook, given = earlier.notebook, dict(earlier.parameters)
        extra = {"resume_of": earlier.notebook_run_id, "attempt": earlier.attempt + 1,
                 "schedule_id": earlier.schedule_id, "scheduled_for": earlier.scheduled_for}
    else:
        assert meta is not None
        notebook = str(meta["notebook"])
        # Masked values were secrets: they must be given again (or keep their defaults).
        given = {k: v for k, v in dict(meta.get("parameters") or {}).items() if v != MASK}
        extra = {"resume_of": run_id}
    given.pop("headless", None)
    given.update(parameters or {})
    job = prepare(notebook, given, cli=cli, state=state, trigger="resume",
                  **{**extra, **options})
    record = execute(job)
    if run_id is None:
        return Resumed(earlier.notebook_run_id if earlier else "", "notebook",
                       notebook_run=record)
    store = open_store(state)
    try:
        after = fold(run_id, store.load_run(run_id))
    finally:
        store.close()
    return Resumed(run_id, "notebook", run_id, after.status, record, after.result)


def _by_import(target: str, run_id: str, state: Path | str) -> Resumed:
    from orbits_nb.engine.engine import Engine

    engine = Engine(state)
    try:
        run = engine.get_run(run_id)
        module = run.state().workflow.partition(":")[0]
        if module in ("__main__", ""):
            raise ActionNotFound(
                f"run {run_id!r} runs {run.state().workflow}, defined in a notebook or "
                "script, so it cannot be imported here; resume it by notebook (without "
                "--by-import) if a runbook started it, else re-run the notebook that "
                "defines it", run_id=run_id)
        handle = run.retry()
        try:
            result = handle.wait()
        except Exception:  # the run recorded its failure; report its status
            result = None
        return Resumed(target, "import", run_id, handle.status, result=result)
    finally:
        engine.close()
