"""Commands to a run from any process: requests recorded as events of the run.

A process that does not execute a run (another kernel, the command line, another host)
cannot reach the one that does except through the store. It appends a request event
(``run.cancel_requested``) to the run's events; the owner looks for requests of the
runs it executes past the last ``seq`` it saw, a range read of the append-only log
(``seq`` grows in commit order in both stores), and acts on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import loads_record
from orbits_nb.core.state import Event
from orbits_nb.store.marks import Marks
from orbits_nb.store.statefile import StateFile

if TYPE_CHECKING:
    import duckdb

#: Event kinds the owner of a run acts on.
COMMAND_KINDS = ("run.cancel_requested",)

_COMMANDS = (
    "SELECT run_id, seq, ts, step, kind, attempt, data FROM events "
    "WHERE seq > $1 AND seq <= $2 AND step IS NULL AND kind IN "
    "(SELECT unnest($3::VARCHAR[])) AND run_id IN (SELECT unnest($4::VARCHAR[])) "
    "ORDER BY seq")


class CommandTables(StateFile, Marks):
    """The command verbs of the store (see the module)."""

    def commands(self, run_ids: Sequence[str], after: int) -> tuple[list[Event], int]:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidArgument(f"commands(after=...) needs a seq (a whole number of at "
                                  f"least 0), got {after!r}")
        ids = [str(run_id) for run_id in run_ids]
        with self.connection(write=False) as con:
            return _commands(con, ids, after)


def _commands(con: duckdb.DuckDBPyConnection, run_ids: list[str], after: int
              ) -> tuple[list[Event], int]:
    row = con.execute("SELECT max(seq) FROM events").fetchone()
    newest = int(row[0]) if row and row[0] is not None else 0
    if not run_ids or newest <= after:
        return [], max(newest, after)
    # The bound is read first: a request committed meanwhile has a higher seq, and the
    # next look (from ``newest``) finds it.
    rows = con.execute(_COMMANDS, [after, newest, list(COMMAND_KINDS), run_ids]).fetchall()
    events = [Event(run_id=r[0], seq=r[1], ts=r[2], step=r[3], kind=r[4], attempt=r[5],
                    data=loads_record(r[6]) or {}) for r in rows]
    return events, newest
