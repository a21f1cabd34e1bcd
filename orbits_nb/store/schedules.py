"""``schedules``: cron expressions that run a runbook (their locks: :mod:`.leases`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orbits_nb.core.rows import ScheduleRow
from orbits_nb.core.serde import dumps
from orbits_nb.store.encode import json_value
from orbits_nb.store.statefile import StateFile

_COLUMNS = ("schedule_id", "cron", "notebook", "parameters", "catch_up", "options",
            "enabled", "created_at", "last_due", "skipped", "last_skip")
_SELECT = ", ".join(f"epoch({c})" if c in ("created_at", "last_due") else c
                    for c in _COLUMNS)


def _record(row: Sequence[Any]) -> ScheduleRow:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["parameters"] = json_value(data["parameters"]) or {}
    data["options"] = json_value(data["options"]) or {}
    return ScheduleRow(**data)


class ScheduleTables(StateFile):
    """The schedule verbs of the store."""

    def schedules(self) -> list[ScheduleRow]:
        with self.connection(write=False) as con:
            rows = con.execute(f"SELECT {_SELECT} FROM schedules ORDER BY schedule_id"
                               ).fetchall()
        return [_record(r) for r in rows]

    def schedule(self, schedule_id: str) -> ScheduleRow | None:
        with self.connection(write=False) as con:
            rows = con.execute(f"SELECT {_SELECT} FROM schedules WHERE schedule_id = ?",
                               [schedule_id]).fetchall()
        return _record(rows[0]) if rows else None

    def add_schedule(self, schedule: ScheduleRow) -> bool:
        # Parameters hold secrets only as references: nothing in them to mask.
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM schedules WHERE schedule_id = ?",
                           [schedule.schedule_id]).fetchone():
                return False
            con.execute(
                "INSERT INTO schedules VALUES (?, ?, ?, ?, ?, ?, ?, to_timestamp(?), "
                "to_timestamp(?), ?, ?)",
                [schedule.schedule_id, schedule.cron, schedule.notebook,
                 dumps(schedule.parameters), schedule.catch_up, dumps(schedule.options),
                 schedule.enabled, schedule.created_at, schedule.last_due, schedule.skipped,
                 schedule.last_skip])
        return True

    def remove_schedule(self, schedule_id: str) -> None:
        with self.connection() as con:
            con.execute("DELETE FROM schedules WHERE schedule_id = ?", [schedule_id])

    def advance_schedule(self, schedule_id: str, last_due: float, skipped: int = 0,
                         reason: str | None = None) -> None:
        with self.connection() as con:
            con.execute(
                "UPDATE schedules SET last_due = greatest(last_due, to_timestamp(?)), "
                "skipped = skipped + ?, last_skip = coalesce(?, last_skip) "
                "WHERE schedule_id = ?", [last_due, skipped, reason, schedule_id])
