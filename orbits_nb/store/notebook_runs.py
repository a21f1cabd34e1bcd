"""``notebook_runs``: one row per headless execution of a runbook notebook."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from orbits_nb.core.rows import NotebookRunRow
from orbits_nb.store.encode import json_text, json_value
from orbits_nb.store.statefile import StateFile

COLUMNS = tuple(f.name for f in dataclasses.fields(NotebookRunRow))
_TIMES = ("scheduled_for", "started_at", "finished_at")
_JSON = ("parameters", "error", "workflow_runs")
_SELECT = ", ".join(f"epoch({c})" if c in _TIMES else c for c in COLUMNS)


def _values(record: NotebookRunRow) -> list[Any]:
    """The row of ``record``; known secret values are masked in its JSON (the error)."""
    return [json_text(getattr(record, c)) if c in _JSON else getattr(record, c)
            for c in COLUMNS]


def _record(row: Sequence[Any]) -> NotebookRunRow:
    data = dict(zip(COLUMNS, row, strict=True))
    for column in _JSON:
        data[column] = json_value(data[column])
    data["parameters"] = data["parameters"] or {}
    data["workflow_runs"] = data["workflow_runs"] or []
    return NotebookRunRow(**data)


class NotebookRunTables(StateFile):
    """The notebook run verbs of the store."""

    def add_notebook_run(self, record: NotebookRunRow) -> None:
        marks = ", ".join("to_timestamp(?)" if c in _TIMES else "?" for c in COLUMNS)
        with self.connection() as con:
            con.execute(f"INSERT INTO notebook_runs ({', '.join(COLUMNS)}) VALUES ({marks})",
                        _values(record))

    def save_notebook_run(self, record: NotebookRunRow) -> None:
        sets = ", ".join(f"{c} = to_timestamp(?)" if c in _TIMES else f"{c} = ?"
                         for c in COLUMNS[1:])
        with self.connection() as con:
            con.execute(f"UPDATE notebook_runs SET {sets} WHERE notebook_run_id = ?",
                        [*_values(record)[1:], record.notebook_run_id])

    def set_kernel_pid(self, notebook_run_id: str, pid: int) -> None:
        with self.connection() as con:
            con.execute("UPDATE notebook_runs SET kernel_pid = ? WHERE notebook_run_id = ?",
                        [pid, notebook_run_id])

    def notebook_run(self, notebook_run_id: str) -> NotebookRunRow | None:
        with self.connection(write=False) as con:
            rows = con.execute(f"SELECT {_SELECT} FROM notebook_runs WHERE "
                               "notebook_run_id = ?", [notebook_run_id]).fetchall()
        return _record(rows[0]) if rows else None

    def notebook_runs(self, *, runbook: str | None = None, status: str | None = None,
                      schedule_id: str | None = None, limit: int | None = 50
                      ) -> list[NotebookRunRow]:
        where, params = ["TRUE"], []
        for column, value in (("runbook", runbook), ("status", status),
                              ("schedule_id", schedule_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        query = (f"SELECT {_SELECT} FROM notebook_runs WHERE {' AND '.join(where)} "
                 "ORDER BY started_at DESC")
        if limit:
            query += f" LIMIT {int(limit)}"
        with self.connection(write=False) as con:
            return [_record(row) for row in con.execute(query, params).fetchall()]

    def resumable_notebook_runs(self, error_types: Sequence[str], max_attempts: int
                                ) -> list[NotebookRunRow]:
        with self.connection(write=False) as con:
            rows = con.execute(
                f"SELECT {_SELECT} FROM notebook_runs n WHERE schedule_id IS NOT NULL AND "
                "status = 'failed' AND error->>'type' IN (SELECT unnest($1::VARCHAR[])) AND "
                "attempt < $2 AND NOT EXISTS (SELECT 1 FROM notebook_runs m WHERE "
                "m.resume_of = n.notebook_run_id) ORDER BY started_at",
                [list(error_types), max_attempts]).fetchall()
        return [_record(row) for row in rows]
