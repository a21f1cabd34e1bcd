"""RunSQLMigrations against real DuckDB files and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aws_helpers import assert_nowhere
from pg_server import Server

import orbits_nb as ob
from orbits_nb.actions import MigrationError, RunSQLMigrations
from orbits_nb.actions._sqltargets import describe_url
from orbits_nb.engine.table import records

ASSETS = Path(__file__).resolve().parent.parent / "notebooks" / "assets" / "migrations"


class Migrate(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("sql-migrate", RunSQLMigrations(**self.args["kwargs"]))


class MigrateInEnv(ob.Workflow):
    """The migrations step with its database given by the executor's env."""

    async def define(self) -> Any:
        return await self.do("sql-migrate", RunSQLMigrations(folder=self.args["folder"]),
                             executor=EnvExecutor({"DATABASE_URL": self.args["url"]}))


class EnvExecutor(ob.LocalExecutor):
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def call(self, action: ob.Action, method: Any) -> Any:
        action.env = dict(self.env)
        return await super().call(action, method)


def migrate(engine: ob.Engine, **kwargs: Any) -> ob.Run:
    run = engine.start(Migrate(kwargs=kwargs), fresh=True)
    with contextlib.suppress(ob.OrbitsError):
        run.wait(60)
    return run


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(ASSETS, target)
    return target


def tables(path: Path) -> set[str]:
    with duckdb.connect(str(path)) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables")
                .fetchall()}


def test_each_file_is_applied_once_in_order(engine: ob.Engine, folder: Path,
                                            tmp_path: Path) -> None:
    db = tmp_path / "acme.duckdb"
    first = migrate(engine, folder=str(folder), database=f"duckdb://{db}").wait()
    assert first["applied"] == ["001_customers.sql", "002_orders.sql", "003_order_status.sql"]
    assert first["database"] == f"duckdb:{db}"
    assert {"customers", "orders", "orbits_nb_migrations"} <= tables(db)
    again = migrate(engine, folder=str(folder), database=str(db)).wait()
    assert again["applied"] == [] and again["already_applied"] == 3
    (folder / "10_refunds.sql").write_text("CREATE TABLE refunds (id INTEGER);")
    (folder / "9_notes.sql").write_text("CREATE TABLE notes (id INTEGER);")
    (folder / "README.md").write_text("not a migration")
    third = migrate(engine, folder=str(folder), database=str(db)).wait()
    assert third["applied"] == ["9_notes.sql", "10_refunds.sql"]  # natural order
    assert third["total_applied"] == 5
    with duckdb.connect(str(db)) as con:
        rows = con.execute("SELECT name, length(checksum) FROM orbits_nb_migrations "
                           "ORDER BY applied_at, name").fetchall()
    assert [r[0] for r in rows][:3] == first["applied"] and {r[1] for r in rows} == {64}


def test_a_failing_file_is_rolled_back_and_named(engine: ob.Engine, folder: Path,
                                                 tmp_path: Path) -> None:
    db = tmp_path / "acme.duckdb"
    (folder / "004_broken.sql").write_text(
        "CREATE TABLE invoices (id INTEGER);\nINSERT INTO invoices VALUES (1);\n"
        "INSERT INTO nowhere VALUES (1);\n")
    run = migrate(engine, folder=str(folder), database=str(db))
    assert run.status == "failed" and records(run.steps())[0]["attempts"] == 1
    error = str(run.state().ordered_steps()[0].error)
    assert "migration 004_broken.sql failed" in error and "rolled back" in error
    assert "nowhere" in error and "applied before it: 001_customers.sql" in error
    assert "invoices" not in tables(db) and "orders" in tables(db)
    (folder / "004_broken.sql").write_text("CREATE TABLE invoices (id INTEGER);")
    fixed = migrate(engine, folder=str(folder), database=str(db)).wait()
    assert fixed["applied"] == ["004_broken.sql"]


def test_an_applied_file_must_not_change(engine: ob.Engine, folder: Path,
                                         tmp_path: Path) -> None:
    db = tmp_path / "acme.duckdb"
    migrate(engine, folder=str(folder), database=str(db)).wait()
    with (folder / "002_orders.sql").open("a") as out:
        out.write("\n-- edited afterwards\n")
    run = migrate(engine, folder=str(folder), database=str(db))
    assert "002_orders.sql was already applied" in str(run.error)
    with pytest.raises(ob.StepFailed) as caught:
        run.wait()
    assert isinstance(caught.value.cause, MigrationError)
    assert caught.value.cause.fields["migration"] == "002_orders.sql"


def test_the_database_can_come_from_the_executor_env(engine: ob.Engine, folder: Path,
                                                     tmp_path: Path) -> None:
    db = tmp_path / "env.duckdb"
    result = engine.start(MigrateInEnv(folder=str(folder), url=f"duckdb://{db}")).wait(60)
    assert len(result["applied"]) == 3 and "customers" in tables(db)


def test_missing_database_and_bad_arguments(engine: ob.Engine, folder: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            state_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    run = migrate(engine, folder=str(folder))
    assert "has no database: pass database=, or provide DATABASE_URL" in str(run.error)
    run = migrate(engine, folder=str(folder / "nope"), database="x.duckdb")
    assert "is not a directory" in str(run.error)
    run = migrate(engine, folder=str(folder), database="mysql://db/acme")
    assert "unsupported database 'mysql://db/acme'" in str(run.error)
    run = migrate(engine, folder=str(folder), database=str(state_path))
    assert "orbits_nb's own state file" in str(run.error)
    with pytest.raises(ob.InvalidArgument, match="not a valid table name"):
        RunSQLMigrations(folder="m", table="drop table x;")
    with pytest.raises(ob.InvalidArgument, match="not an environment variable name"):
        RunSQLMigrations(folder="m", database_env="1 bad")


def test_urls_are_shown_without_passwords() -> None:
    assert describe_url("postgresql://app:s3cret@db:5432/acme") == "postgresql://app@db:5432/acme"
    assert describe_url("duckdb:///srv/acme.duckdb") == "duckdb:///srv/acme.duckdb"


# -- PostgreSQL ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 (initdb + pg_ctl), with a password."""
    server = Server()
    try:
        yield server.url()
    finally:
        server.close()


@pytest.mark.slow
def test_postgresql_migrations(engine: ob.Engine, folder: Path, postgres: str,
                               state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("APP_DATABASE", postgres)
    secret = ob.Secret.from_env("APP_DATABASE")
    first = migrate(engine, folder=str(folder), database=secret).wait()
    assert len(first["applied"]) == 3
    assert first["database"].startswith("postgresql://app@127.0.0.1:")
    assert migrate(engine, folder=str(folder), database=secret).wait()["applied"] == []
    (folder / "004_broken.sql").write_text("CREATE TABLE invoices (id int); SELEC 1;")
    failed = migrate(engine, folder=str(folder), database=secret)
    assert "004_broken.sql failed" in str(failed.error)
    with psycopg.connect(postgres) as con:
        names = {r[0] for r in con.execute("SELECT tablename FROM pg_tables").fetchall()}
        applied = con.execute("SELECT count(*) FROM orbits_nb_migrations").fetchone()
    assert {"customers", "orders"} <= names and "invoices" not in names
    assert applied == (3,)
    engine.close()
    assert_nowhere("s3cret-pg", state_path, store=state_path)
