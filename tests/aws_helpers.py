"""Test helpers for the AWS and flagship tests: account lookups and leak checks."""

from __future__ import annotations

from pathlib import Path

from orbits_nb.aws.emulator import Emulator
from orbits_nb.store.duckdb_store import DuckDBStore

#: An e-mail the test emulator refuses with EMAIL_ALREADY_EXISTS.
TAKEN_EMAIL = "taken@example.com"


def accounts_named(emulator: Emulator, name: str) -> list[dict[str, object]]:
    return [a for a in emulator.accounts() if a["Name"] == name]


def assert_nowhere(secret: str, *paths: Path, store: Path | None = None) -> None:
    """``secret`` is in none of the files (bytes, WAL included) nor in the store's text.

    DuckDB may compress strings on disk, so the store is also searched through SQL.
    """
    assert len(secret) >= 8, "a short secret would make this check meaningless"
    needle = secret.encode()
    files = [p for path in paths for p in ([path, Path(str(path) + ".wal")]
                                           if path.suffix == ".duckdb" else [path])]
    checked = 0
    for path in files:
        if path.is_dir():
            for child in path.rglob("*"):
                if child.is_file():
                    assert needle not in child.read_bytes(), f"secret leaked into {child}"
                    checked += 1
        elif path.exists():
            assert needle not in path.read_bytes(), f"secret leaked into {path}"
            checked += 1
    assert checked, f"none of {paths} exist: the check would be vacuous"
    if store is not None:
        db = DuckDBStore(store)
        try:
            pattern = "%" + secret.replace("%", r"\%") + "%"
            rows = db.fetch("SELECT count(*) FROM events WHERE CAST(data AS VARCHAR) LIKE ? "
                            "ESCAPE '\\'", [pattern])
            logs = db.fetch("SELECT count(*) FROM logs WHERE message LIKE ? ESCAPE '\\'",
                            [pattern])
            total = db.fetch("SELECT (SELECT count(*) FROM events) + "
                             "(SELECT count(*) FROM logs)")
        finally:
            db.close()
        assert rows[0][0] == 0, "secret leaked into the events table"
        assert logs[0][0] == 0, "secret leaked into the logs table"
        assert total[0][0] > 0, "the store is empty: the check would be vacuous"
