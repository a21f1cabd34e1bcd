"""The team store across hosts, and its faults: two engines as two hosts on one
PostgreSQL database, logins, a server that is down, no permission, a dropped
connection. Hosts are simulated by giving each process its own host id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from pg_server import PASSWORD, Server, free_port
from stores import Location

import orbits_nb as ob
from orbits_nb.core.rows import Batch, Owner
from orbits_nb.core.state import Event
from orbits_nb.store import open_store
from orbits_nb.store.integrity import check

STEPS = 40
#: A run of STEPS steps of 0.15 s each; every step appends "<step> <pid>" to a file.
WORKER = """
import os, sys, time
import orbits_nb as ob

class Work(ob.Action):
    def main(self):
        time.sleep(0.15)
        with open(sys.argv[2], "a") as out:
            out.write(f"{self.step} {os.getpid()} main\\n")
        return self.args["i"]

class Long(ob.Workflow):
    async def define(self):
        return sum([await self.do(f"s{i}", Work(i=i)) for i in range(int(sys.argv[3]))])

engine = ob.Engine(sys.argv[1])
print("RESULT", engine.start(Long(), run_id="team").wait(), flush=True)
engine.close()
"""


def worker(url: str, effects: Path, host: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ORBITS_NB_HOST": host, "ORBITS_NB_LEASE_TIMEOUT": "2"}
    return subprocess.Popen([sys.executable, "-c", WORKER, url, str(effects), str(STEPS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def wait_for_lines(path: Path, count: int) -> None:
    while not path.exists() or len(path.read_text().splitlines()) < count:
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_host_takes_over_only_after_missed_heartbeats(pg_location: Location,
                                                                tmp_path: Path) -> None:
    url, effects = pg_location.where, tmp_path / "effects.txt"
    watcher = pg_location.open(host="host-c")
    mark = watcher.events_mark()
    first = worker(url, effects, "host-a")
    wait_for_lines(effects, 3)
    # Another host sees the run live (the poll of events moves, the owner is named).
    assert watcher.events_mark() != mark
    listed = {r.run_id: r for r in watcher.recent_runs()}
    owner = listed["team"].owner
    assert owner is not None and owner.host == "host-a"
    time.sleep(2.5)  # longer than the lease timeout: only heartbeats keep the lease
    assert first.poll() is None
    refused = worker(url, tmp_path / "refused.txt", "host-b")
    _, err = refused.communicate(timeout=120)
    assert refused.returncode != 0 and "being executed by host-a" in err
    assert not (tmp_path / "refused.txt").exists()

    os.kill(first.pid, signal.SIGKILL)  # host-a stops heartbeating
    first.wait()
    # Its pid means nothing to host-b: the lease stays until the heartbeat is too old.
    soon = worker(url, tmp_path / "soon.txt", "host-b")
    _, err = soon.communicate(timeout=120)
    assert soon.returncode != 0 and "being executed by host-a" in err
    time.sleep(2.2)
    second = worker(url, effects, "host-b")
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    assert f"RESULT {sum(range(STEPS))}" in out and "lock" not in err.lower()

    store: Any = pg_location.open()
    assert check(store) == []
    executed: dict[str, list[int]] = defaultdict(list)
    for line in effects.read_text().splitlines():
        step, pid, _ = line.split()
        executed[step].append(int(pid))
    succeeded = store.fetch("SELECT step, count(*) FROM events WHERE run_id = 'team' AND "
                            "kind = 'step.succeeded' GROUP BY step")
    assert all(count == 1 for _, count in succeeded)
    # A step host-a finished was never executed again by host-b.
    by_pid = dict(store.fetch(
        "SELECT DISTINCT data->>'host', CAST(data->>'pid' AS BIGINT) FROM events WHERE "
        "run_id = 'team' AND kind = 'run.started'"))
    assert set(by_pid) == {"host-a", "host-b"}
    done_by_a = {row[0] for row in store.fetch(
        "SELECT step FROM events WHERE run_id = 'team' AND kind = 'step.succeeded' AND "
        "seq < (SELECT max(seq) FROM events WHERE run_id = 'team' AND kind = 'run.started')")}
    for step in done_by_a:
        assert second.pid not in executed[step], step
    assert store.fetch("SELECT count(*) FROM leases") == [(0,)]


@pytest.mark.parametrize("family", ["resource", "schedule"])
def test_resource_leases_and_schedule_locks_across_hosts(pg_location: Location,
                                                         family: str) -> None:
    a = pg_location.open(host="host-a", lease_timeout=1.0)
    b = pg_location.open(host="host-b", lease_timeout=1.0)
    holder = Owner("token-a", "host-a", os.getpid())
    assert a.take_lease(family, "k", holder) is None  # type: ignore[arg-type]
    time.sleep(0.6)
    a.renew_leases(family, [("k", "token-a")])  # type: ignore[arg-type]
    time.sleep(0.6)
    kept = b.take_lease(family, "k", Owner("token-b", "host-b", os.getpid()))  # type: ignore[arg-type]
    assert kept is not None and kept.host == "host-a"
    time.sleep(1.1)  # host-a stopped renewing
    assert b.take_lease(family, "k", Owner("token-b", "host-b", os.getpid())) is None  # type: ignore[arg-type]
    assert [lease.token for lease in a.leases(family)] == ["token-b"]  # type: ignore[arg-type]


def test_two_hosts_racing_for_many_runs_get_each_exactly_once(pg_location: Location) -> None:
    import threading

    stores = [pg_location.open(host=f"host-{i}") for i in range(4)]
    run_ids = [f"r{i}" for i in range(30)]
    won: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    together = threading.Barrier(len(stores))

    def grab(store: Any, name: str) -> None:
        for run_id in run_ids:
            together.wait()  # every host asks for the same run at the same moment
            got = store.open_runs([(run_id, Owner(name, store.host, os.getpid()))])
            if isinstance(got[run_id], list):
                with lock:
                    won[run_id].append(name)

    for store in stores:
        store.recent_runs()  # connected, so the race is not decided by connecting
    threads = [threading.Thread(target=grab, args=(s, f"t{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == sorted(run_ids)
    assert all(len(names) == 1 for names in won.values()), won


# -- logins and faults -----------------------------------------------------------------------
@pytest.mark.parametrize("module", ["psycopg", "psycopg_pool"])
def test_a_missing_driver_says_what_to_install(module: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # the import now fails
    monkeypatch.setenv("ORBITS_NB_STATE", "postgresql://app:pw@127.0.0.1:5432/orbits")
    for make in (lambda: open_store("postgresql://app:pw@127.0.0.1:5432/orbits"),
                 ob.Engine):
        with pytest.raises(ob.MissingDependency) as err:
            make()
        assert "pip install 'orbits_nb[postgres]'" in str(err.value)
        assert module in str(err.value) and ":pw" not in str(err.value)


def test_the_password_comes_from_pgpassword_or_pgpass(pg_server: Server, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bare = pg_server.url(password=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert open_store(bare).recent_runs() == []
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_server.port}:*:app:{PASSWORD}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    store = open_store(bare)
    assert store.recent_runs() == []
    assert PASSWORD not in store.location


def test_a_wrong_password_is_named_without_showing_it(pg_server: Server) -> None:
    url = pg_server.url().replace(PASSWORD, "not-the-password")
    with pytest.raises(ob.StoreError) as err:
        open_store(url, retry_for=0).recent_runs()
    assert err.value.fields["reason"] == "auth"
    assert "not-the-password" not in str(err.value) and "127.0.0.1" in str(err.value)
    assert "database postgres" in str(err.value)


def test_a_server_that_is_down_is_named(pg_server: Server) -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/orbits"
    started = time.monotonic()
    with pytest.raises(ob.StoreError) as err:
        open_store(url, retry_for=0.5).load_run("x")
    assert err.value.fields["reason"] == "unreachable"
    text = str(err.value)
    assert "cannot reach" in text and "127.0.0.1" in text and "database orbits" in text
    assert PASSWORD not in text and PASSWORD not in repr(err.value.fields)
    assert time.monotonic() - started >= 0.5  # it tried again before giving up


@pytest.mark.parametrize("url", ["postgresql://app@127.0.0.1:99999/db",
                                 "postgresql://app:pw@127.0.0.1:5432",
                                 "postgresql://app:pw@host:5432/db#x"])
def test_a_bad_url_is_refused_where_it_enters(url: str) -> None:
    with pytest.raises(ob.InvalidArgument) as err:
        open_store(url)
    assert "pw@" not in str(err.value) and ":pw" not in str(err.value)


def test_no_permission_to_create_the_tables_is_named(pg_server: Server) -> None:
    url = pg_server.database()
    database = url.rsplit("/", 1)[1]
    pg_server.execute("DROP ROLE IF EXISTS reader")
    pg_server.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'")
    pg_server.execute(f"GRANT CONNECT ON DATABASE {database} TO reader")
    reader = f"postgresql://reader:reader-pw@127.0.0.1:{pg_server.port}/{database}"
    with pytest.raises(ob.StoreError) as err:
        open_store(reader).write(Batch(events=[Event("r", "run.created")]))
    assert err.value.fields["reason"] == "permission"
    assert "reader-pw" not in str(err.value) and database in str(err.value)
    # Nothing half-made: the database has no table of the store.
    import psycopg

    with psycopg.connect(url) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE "
                           "table_schema = 'public'").fetchone() == (0,)


def test_a_dropped_connection_is_retried_and_nothing_is_lost_or_doubled(
        pg_location: Location, pg_server: Server) -> None:
    store = pg_location.open()
    database = pg_location.where.rsplit("/", 1)[1]
    store.write(Batch(events=[Event("d", "run.created", data={"workflow": "m:W"})]))
    pg_server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      f"datname = '{database}' AND pid <> pg_backend_pid()")
    store.write(Batch(events=[Event("d", "run.started"), Event("d", "run.succeeded")]))
    assert [e.kind for e in store.load_run("d")] == ["run.created", "run.started",
                                                     "run.succeeded"]


def test_a_workflow_survives_the_server_restarting(pg_location: Location,
                                                   pg_server: Server) -> None:
    class Slow(ob.Action):
        def main(self) -> Any:
            time.sleep(0.05)
            return self.args["i"]

    class Many(ob.Workflow):
        async def define(self) -> Any:
            return sum([await self.do(f"s{i}", Slow(i=i)) for i in range(30)])

    engine = ob.Engine(pg_location.open(retry_for=30))
    try:
        run = engine.start(Many(), run_id="restart")
        time.sleep(0.5)
        pg_server.stop("fast")
        time.sleep(0.5)
        pg_server.start()
        assert run.wait(120) == sum(range(30))
        counts = engine.store.relation(
            "SELECT step, count(*) FROM events WHERE run_id = 'restart' AND kind = "
            "'step.succeeded' GROUP BY step").fetchall()
        assert len(counts) == 30 and all(n == 1 for _, n in counts)
    finally:
        engine.close()


# -- runbooks and the command line on the team store ------------------------------------------
@pytest.mark.slow
def test_a_runbook_runs_against_the_team_store(pg_location: Location,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from orbits_nb import runbooks

    secret = "tok-team-DO-NOT-LEAK"
    monkeypatch.setenv("ORBITS_NB_STATE", pg_location.where)
    record = runbooks.run(Path(__file__).parent / "notebooks" / "success.ipynb",
                          {"client": "globex", "api_token": secret})
    assert record.status == "succeeded", record.error
    executed = Path(str(record.output_path)).read_bytes()
    assert secret.encode() not in executed and PASSWORD.encode() not in executed
    store: Any = pg_location.open()
    stored = store.notebook_run(record.notebook_run_id)
    assert stored is not None and stored.workflow_runs == record.workflow_runs
    assert store.load_run(record.workflow_runs[0])[-1].kind == "run.succeeded"
    everything = str(store.relation("SELECT * FROM events").fetchall()) + \
        str(store.relation("SELECT * FROM notebook_runs").fetchall()) + \
        str(store.relation("SELECT * FROM logs").fetchall())
    assert secret not in everything and PASSWORD not in everything
    shown = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "--state",
                            pg_location.where, "runs", "--notebooks"],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert record.notebook_run_id in shown.stdout
    assert PASSWORD not in shown.stdout + shown.stderr
