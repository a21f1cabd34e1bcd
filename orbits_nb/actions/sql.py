"""``RunSQLMigrations``: an ordered folder of ``.sql`` files, each applied exactly once."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from orbits_nb.actions._sqltargets import Target, TransientDBError, open_target
from orbits_nb.core.action import Action, Retry
from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.core.serde import Secret

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_TABLE = "orbits_nb_migrations"


class MigrationError(OrbitsError):
    """A migration could not be applied, or an applied one was edited afterwards.

    Fields: ``migration`` (the file name) and ``database`` (without its password).
    """


def _natural(name: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part.lower()
                 for part in re.split(r"(\d+)", name))


def migration_files(folder: Path) -> list[Path]:
    """The ``.sql`` files of ``folder`` in natural order (``2_x`` before ``10_x``)."""
    if not folder.is_dir():
        raise InvalidArgument(f"RunSQLMigrations: folder {str(folder)!r} is not a directory",
                              argument="folder")
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() == ".sql" and not p.name.startswith(".")]
    return sorted(files, key=lambda p: _natural(p.name))


class RunSQLMigrations(Action):
    """Apply the ``.sql`` files of ``folder`` to a database, each exactly once, in order.

    The target keeps a ``orbits_nb_migrations`` table (name, checksum, applied_at,
    duration_s); each file runs in its own transaction together with its row, so a
    failing file leaves nothing half-applied and the files before it stay applied.
    Editing a file that was applied is refused (add a new file instead).

    ``database`` is a DuckDB file (a path or ``duckdb:///path``), or a
    ``postgresql://`` URL (needs ``psycopg``), as text or a :class:`~orbits_nb.Secret`.
    Without it, the variable ``database_env`` (``DATABASE_URL``) is read from the
    executor's env (e.g. an :class:`~orbits_nb.aws.AccountExecutor` given a stack's
    outputs), then from the process environment. The result lists what was applied.

    >>> RunSQLMigrations(folder="migrations", database="duckdb:///tmp/app.duckdb")
    RunSQLMigrations(folder='migrations', database='duckdb:///tmp/app.duckdb')
    """

    retry = Retry(attempts=3, delay=2.0, backoff=2.0, on=(TransientDBError,))

    def __init__(self, *, folder: str, database: str | Secret | None = None,
                 database_env: str = "DATABASE_URL", table: str = DEFAULT_TABLE) -> None:
        if not isinstance(folder, str) or not folder:
            raise InvalidArgument(f"RunSQLMigrations: folder must be a directory path, got "
                                  f"{folder!r}", argument="folder")
        if database is not None and not isinstance(database, (str, Secret)):
            raise InvalidArgument("RunSQLMigrations: database must be a path, a URL or a "
                                  f"Secret, got {type(database).__name__}", argument="database")
        if not isinstance(database_env, str) or not _ENV.match(database_env):
            raise InvalidArgument(f"RunSQLMigrations: database_env {database_env!r} is not an "
                                  "environment variable name", argument="database_env")
        if not isinstance(table, str) or not _TABLE.match(table):
            raise InvalidArgument(f"RunSQLMigrations: table {table!r} is not a valid table "
                                  "name ([schema.]identifier)", argument="table")
        args: dict[str, Any] = {"folder": folder}
        if database is not None:
            args["database"] = database
        if database_env != "DATABASE_URL":
            args["database_env"] = database_env
        if table != DEFAULT_TABLE:
            args["table"] = table
        super().__init__(**args)

    def database_url(self) -> str:
        """The target's URL: the argument, else ``database_env`` from the env."""
        database = self.args.get("database")
        if isinstance(database, Secret):
            return database.reveal()
        if database:
            return str(database)
        variable = self.args.get("database_env", "DATABASE_URL")
        value = self.env.get(variable) or os.environ.get(variable)
        if not value:
            raise InvalidArgument(
                f"RunSQLMigrations has no database: pass database=, or provide {variable} "
                "in the executor's env (e.g. a stack output) or the environment",
                argument="database")
        return value

    def main(self) -> Any:
        folder = Path(self.args["folder"]).expanduser()
        files = migration_files(folder)
        started = time.monotonic()
        with open_target(self.database_url(), self.args.get("table", DEFAULT_TABLE),
                         self._state_file()) as target:
            applied = self._apply(target, files)
            total = target.count()
        self.log.info("%s: applied %d migration(s), %d already applied",
                      target.label, len(applied), len(files) - len(applied))
        return {"database": target.label, "applied": applied,
                "already_applied": len(files) - len(applied), "total_applied": total,
                "duration_s": round(time.monotonic() - started, 3)}

    def _apply(self, target: Target, files: list[Path]) -> list[str]:
        done = target.applied()
        known = {p.name for p in files}
        missing = sorted(set(done) - known, key=_natural)
        if missing:
            self.log.warning("%s has applied migrations missing from %s: %s",
                             target.label, self.args["folder"], ", ".join(missing))
        applied: list[str] = []
        for path in files:
            body = path.read_bytes()
            checksum = hashlib.sha256(body).hexdigest()
            if path.name in done:
                if done[path.name] != checksum:
                    raise MigrationError(
                        f"migration {path.name} was already applied to {target.label} but "
                        "the file has changed since; applied migrations are immutable: "
                        "restore it and add a new migration file instead",
                        migration=path.name, database=target.label)
                continue
            self.log.info("applying %s", path.name)
            try:
                target.apply(path.name, body.decode("utf-8"), checksum)
            except TransientDBError:
                raise
            except Exception as err:
                hint = (" (a migration file must not contain BEGIN/COMMIT: each file "
                        "already runs in its own transaction)"
                        if "transaction" in str(err).lower() else "")
                raise MigrationError(
                    f"migration {path.name} failed on {target.label} and was rolled back: "
                    f"{type(err).__name__}: {str(err).strip()}{hint}"
                    + (f"; applied before it: {', '.join(applied)}" if applied else ""),
                    migration=path.name, database=target.label) from None
            applied.append(path.name)
        return applied

    def _state_file(self) -> Path | None:
        engine = self.__dict__.get("_engine")
        store = getattr(engine, "store", None)
        return None if store is None or store.memory else Path(store.path)
