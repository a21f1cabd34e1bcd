"""One progress view for a fleet: a row per tenant, live in a notebook, text elsewhere.

In a terminal, the live part is the engine's terminal progress (tqdm's bar and the
step lines of every tenant, ``tenant-acme/git-create``), and the table is printed once
at the end: a table redrawn in place would fight the bar for the same lines.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from orbits_nb.core.state import RunState, fold, short_error
from orbits_nb.engine.table import Table
from orbits_nb.flagship.fleet import tenant_step

if TYPE_CHECKING:
    from orbits_nb.engine.run import Run

COLUMNS = ["tenant", "status", "step", "done", "account", "error"]
#: The steps of one DeployBackend, in order, for the "done" column.
BACKEND_STEPS = ("git-create", "aws-create", "iac-deploy", "sql-migrate")


def _child_state(run: Run, key: str, child_id: str) -> RunState | None:
    execution = run.execution
    if execution is not None and key in execution.children:
        return execution.children[key].state
    events = run.engine.store.load_run(child_id)
    return fold(child_id, events) if events else None


def fleet_progress(run: Run) -> Table:
    """A table of the fleet run's tenants: status, current step, steps done, account."""
    state = run.state()
    rows = []
    for tenant in state.args.get("tenants", []):
        key = tenant_step(tenant)
        step = state.steps.get(key)
        row: dict[str, Any] = {"tenant": tenant, "status": "queued", "step": "",
                               "done": f"0/{len(BACKEND_STEPS)}", "account": "",
                               "error": ""}
        if step is not None:
            row["status"] = step.status
            child = _child_state(run, key, step.child_run_id or f"{run.run_id}/{key}")
            if child is not None:
                row.update(_child_row(child))
            if step.status == "failed" and not row["error"]:
                row["error"] = short_error(step.error)
        rows.append(row)
    return Table(COLUMNS, rows)


def _child_row(child: RunState) -> dict[str, Any]:
    steps = child.ordered_steps()
    done = sum(s.status == "succeeded" and s.key in BACKEND_STEPS for s in steps)
    current = next((s for s in reversed(steps) if s.status != "succeeded"),
                   steps[-1] if steps else None)
    account = child.steps.get("aws-create")
    failed = next((s for s in steps if s.status == "failed"), None)
    row: dict[str, Any] = {"done": f"{done}/{len(BACKEND_STEPS)}",
                           "step": current.key if current else ""}
    if account is not None and isinstance(account.result, dict):
        row["account"] = account.result.get("account_id", "")
    if failed is not None:
        row["error"] = f"{failed.key}: {short_error(failed.error)}"
    if child.status in ("succeeded", "failed", "cancelled"):
        row["status"] = child.status
    return row


def summary(table: Table) -> str:
    """``3 tenants: 2 succeeded, 1 failed``."""
    counts: dict[str, int] = {}
    for row in table:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{len(table)} tenants: {parts}"


def watch_fleet(run: Run, *, refresh: float = 0.5) -> Table:
    """Show the fleet table and keep it current until the run ends; return the last one.

    In a notebook the table is one display that updates in place, redrawn when the
    engine reports a change, at most every ``refresh`` seconds. In a terminal the
    run's progress (the same tqdm bar and step lines as ``run.wait()``) is shown on
    stderr meanwhile; at the end the final table is printed.
    """
    from orbits_nb.engine.progress import shown_while_waiting

    changed = threading.Event()
    unsubscribe = run.engine.subscribe(lambda _execution: changed.set())
    handle = _display(fleet_progress(run))
    try:
        with contextlib.nullcontext() if handle is not None else shown_while_waiting(run):
            while not run.done:
                changed.wait(refresh)
                changed.clear()
                if handle is not None:
                    handle.update(_bundle(fleet_progress(run)), raw=True)
    finally:
        unsubscribe()
    final = fleet_progress(run)
    if handle is not None:
        handle.update(_bundle(final), raw=True)
    else:
        print(summary(final) + "\n" + final.text())
    return final


def _bundle(table: Table) -> dict[str, str]:
    """Both text and HTML, so the saved notebook reads well in any viewer."""
    head = summary(table)
    return {"text/plain": head + "\n" + table.text(),
            "text/html": f"<p><b>{head}</b></p>" + table._repr_html_()}


def _display(table: Table) -> Any:
    import sys

    if "ipykernel" not in sys.modules:
        return None
    from IPython.display import display

    return display(_bundle(table), raw=True, display_id=True)  # type: ignore[no-untyped-call]
