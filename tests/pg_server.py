"""A real PostgreSQL server for tests: initdb and pg_ctl in a temporary folder.

The server listens on 127.0.0.1 on a free port, with password (md5) logins for the
superuser ``app``. Under root (as in CI) it runs as the ``postgres`` user, since
PostgreSQL refuses to run as root. Missing binaries skip the tests, except in CI
(``CI`` set), where they fail: the team store must be tested there.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PASSWORD = "s3cret-pg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binaries() -> tuple[str, str]:
    """initdb and pg_ctl, or a skip (a failure in CI)."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/bin", *bindirs])
    initdb, pg_ctl = shutil.which("initdb", path=search), shutil.which("pg_ctl", path=search)
    if initdb is None or pg_ctl is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are missing in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return initdb, pg_ctl


class Server:
    """One running server; :meth:`database` makes a fresh empty database on it."""

    def __init__(self, *, durable: bool = False) -> None:
        """``durable=False`` (tests) runs without fsync; benchmarks keep it on."""
        initdb, self.pg_ctl = binaries()
        self.durable = durable
        # Not under pytest's temp folder: the postgres user cannot enter root's 0700 dirs.
        self.root = Path(tempfile.mkdtemp(prefix="orbits-nb-pg-"))
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        password = self.root / "pw"
        password.write_text(PASSWORD + "\n")
        if self.prefix:
            shutil.chown(password, "postgres")
        self.data, self.port = self.root / "data", free_port()
        subprocess.run([*self.prefix, initdb, "-D", str(self.data), "-U", "app",
                        "--auth=md5", f"--pwfile={password}"], check=True,
                       capture_output=True)
        self.start()

    def start(self) -> None:
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-l",
                        str(self.root / "log"), "-w", "-o",
                        f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        f"-c fsync={'on' if self.durable else 'off'} "
                        "-c max_connections=200", "start"],
                       check=True, capture_output=True)

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", mode,
                        "stop"], check=False, capture_output=True)

    def url(self, database: str = "postgres", *, password: bool = True,
            user: str = "app") -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A fresh database; its URL (with the password)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def execute(self, query: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as con:
            con.execute(query)  # type: ignore[arg-type]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
