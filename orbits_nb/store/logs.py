"""The ``logs`` table: captured output of steps, one row per line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.rows import LogLine
from orbits_nb.store.encode import text
from orbits_nb.store.guard import check_run_id, check_step
from orbits_nb.store.statefile import StateFile

if TYPE_CHECKING:
    import duckdb


def insert_logs(con: duckdb.DuckDBPyConnection, lines: Sequence[LogLine]) -> None:
    """Append ``lines`` (inside the caller's transaction), secrets masked."""
    if not lines:
        return
    params: list[Any] = []
    for line in lines:
        params += [line.ts, line.run_id, line.step, line.attempt, line.stream,
                   text(line.message)]
    values = ",".join(["(?,?,?,?,?,?)"] * len(lines))
    con.execute(f"INSERT INTO logs VALUES {values}", params)


class LogTables(StateFile):
    """The log verbs of the store."""

    def logs(self, run_id: str, step: str | None = None,
             attempt: int | None = None) -> list[LogLine]:
        check_run_id(run_id)
        query = "SELECT run_id, step, attempt, stream, message, ts FROM logs WHERE run_id = ?"
        params: list[Any] = [run_id]
        if check_step(step) is not None:
            query += " AND step = ?"
            params.append(step)
        if attempt is not None:
            if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
                raise InvalidArgument(f"attempt={attempt!r} must be a whole number of at "
                                      "least 1 (see the attempts of a step in run.steps())",
                                      value=repr(attempt))
            query += " AND attempt = ?"
            params.append(attempt)
        with self.connection(write=False) as con:
            # Lines of one moment keep the order of the attempts that printed them.
            rows = con.execute(query + " ORDER BY ts, attempt NULLS FIRST", params
                               ).fetchall()
        return [LogLine(*row) for row in rows]
