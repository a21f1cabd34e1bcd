"""What the runner adds to an executed notebook: a header cell, a report, no secrets.

The header (first cell) shows the notebook run, its parameters with secrets masked,
and its status. The report (last cells) shows each workflow run the notebook
executed, with the static display of :class:`~orbits_nb.Run` (its
``_repr_mimebundle_`` when the notebook views provide one, else the text and the step
table), rendered from the store so it is there even when the kernel died.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orbits_nb.core import masking
from orbits_nb.core.serde import MASK
from orbits_nb.store.location import project_root

if TYPE_CHECKING:
    from pathlib import Path

    from orbits_nb.engine.engine import Engine
    from orbits_nb.runbooks.records import NotebookRun

HEADER_TAG = "orbits-nb-header"
BOOTSTRAP_TAG = "orbits-nb-bootstrap"
REPORT_TAG = "orbits-nb-report"
ERROR_MARKER_TAG = "papermill-error-cell-tag"
INSERTED_TAGS = (HEADER_TAG, BOOTSTRAP_TAG, REPORT_TAG, ERROR_MARKER_TAG,
                 "injected-parameters")
_ICONS = {"running": "⏳", "succeeded": "✅", "failed": "❌"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Widget views mean nothing without a live kernel; drop them from static reports.
_LIVE_ONLY = ("application/vnd.jupyter.widget-view+json",)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 200:
        text = text[:197] + "..."
    return f"<code>{html.escape(text)}</code>"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def header(record: NotebookRun, notebook_label: str) -> str:
    """The markdown of the header cell for ``record`` in its current state."""
    icon = _ICONS.get(record.status, "")
    lines = [f"### {icon} orbits-nb runbook `{record.runbook}`: {record.status}", "",
             "| | |", "|---|---|",
             f"| notebook run | {_code(record.notebook_run_id)} |",
             f"| notebook | {_code(notebook_label)} |",
             f"| started | {_when(record.started_at)} |"]
    if record.duration_s is not None:
        lines.append(f"| duration | {record.duration_s:.1f} s |")
    lines.append(f"| trigger | {html.escape(_trigger(record))} |")
    if record.workflow_runs:
        lines.append("| workflow runs | " + ", ".join(_code(r) for r in record.workflow_runs)
                     + " |")
    if record.error:
        where = f"cell {record.failed_cell}: " if record.failed_cell is not None else ""
        message = f"{record.error.get('type')}: {record.error.get('message')}"
        lines.append(f"| error | {html.escape(where)}{_code(message)} |")
    params = record.masked_parameters()
    if params:
        lines += ["", "**Parameters**", "", "| name | value |", "|---|---|"]
        lines += [f"| {html.escape(k)} | {_code(v)}{' (secret)' if v == MASK else ''} |"
                  for k, v in params.items()]
    return "\n".join(lines)


def _trigger(record: NotebookRun) -> str:
    text = record.trigger
    if record.schedule_id:
        text += f" (schedule {record.schedule_id}, due {_when(record.scheduled_for)})"
    if record.resume_of:
        text += f", resuming {record.resume_of} (attempt {record.attempt})"
    return text


def run_bundle(engine: Engine, run_id: str) -> dict[str, Any]:
    """The static display of a run: the views' mimebundle if any, else text + table."""
    from orbits_nb.engine.run import Run

    run = Run(engine, run_id)
    data: dict[str, Any] = {}
    rich = getattr(run, "_repr_mimebundle_", None)
    if callable(rich):
        try:
            bundle = rich()
            data = dict(bundle[0] if isinstance(bundle, tuple) else bundle or {})
        except Exception:  # a broken view must not lose the report
            data = {}
    for mime in _LIVE_ONLY:
        data.pop(mime, None)
    data.setdefault("text/plain", repr(run))
    if "text/html" not in data and "image/svg+xml" not in data:
        state = run.state()
        title = html.escape(f"Run {run_id} [{state.status}]")
        from orbits_nb.engine.table import relation_html

        data["text/html"] = f"<p><b>{title}</b></p>" + relation_html(run.steps())
    return {k: v for k, v in data.items() if isinstance(v, (str, dict, list))}


def state_argument(state: Path, notebook: Path | None) -> str | None:
    """How a kernel started in ``notebook``'s folder finds ``state``.

    None when ``state`` is the file such a kernel opens by default (the folder's project
    state), so the cell stays portable; a path relative to that folder when ``state``
    lies inside it (the folder can move); else the absolute path. ``$ORBITS_NB_STATE``
    is ignored: the notebook outlives the environment of the process that wrote it.
    """
    state = state.resolve()
    if notebook is None:
        return str(state)
    folder = notebook.resolve().parent
    if state == project_root(folder) / ".orbits_nb" / "state.duckdb":
        return None
    try:
        return state.relative_to(folder).as_posix()
    except ValueError:
        return str(state)


def live_view_source(run_id: str, state: str | None) -> str:
    """The code of a report cell: the run's handle, from the store that holds it."""
    where = "" if state is None else f", state={state!r}"
    return f"import orbits_nb as ob\n\nob.get_run({run_id!r}{where})"


def report_cells(nbformat: Any, engine: Engine, run_ids: list[str],
                 notebook: Path | None = None) -> list[Any]:
    """A markdown title and one code cell per run with its static display as output.

    ``notebook`` is where the executed notebook is written: each cell opens the state
    of ``engine`` as a kernel started beside it finds it (:func:`state_argument`).
    """
    if not run_ids:
        return []
    title = nbformat.v4.new_markdown_cell(
        "### Workflow runs\nStatic report written by `orbits-nb run` from the state store. "
        "Run a cell in Jupyter to get the live view of that run.")
    cells = [title]
    file = engine.store.file
    state = state_argument(file, notebook) if file is not None else engine.store.location
    for run_id in run_ids:
        source = live_view_source(run_id, state)
        cell = nbformat.v4.new_code_cell(source)
        try:
            bundle = run_bundle(engine, run_id)
        except Exception as err:  # the store may lack the run if its kernel died early
            bundle = {"text/plain": f"run {run_id}: no report ({err})"}
        cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
        cells.append(cell)
    for cell in cells:
        cell.metadata["tags"] = [REPORT_TAG]
    return cells


def scrub(node: Any, secrets: Iterable[str] = ()) -> Any:
    """Mask every known secret value (and ``secrets``) in the strings of ``node``.

    Containers are changed in place; the masked node is returned.
    """
    masking.remember_all(secrets)
    return _scrub(node)


def _scrub(node: Any) -> Any:
    if isinstance(node, str):
        return masking.mask(node)
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _scrub(node[key])
    elif isinstance(node, list):
        for index, item in enumerate(node):
            node[index] = _scrub(item)
    return node
