"""The README's API tour runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_code() -> str:
    text = README.read_text()
    start = text.index("<!-- tour")
    end = text.index("\n## ", start)
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)
    assert len(blocks) >= 4
    return "\n".join(blocks)


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "tour.py"
    script.write_text(tour_code())
    env = {**os.environ, "ORBITS_NB_STATE": str(tmp_path / "state.duckdb")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "{'repo': 'file:///srv/git/acme.git', 'account': '123456789012'}" in out.stdout
    assert "succeeded" in out.stdout
    assert "creating acme" in out.stdout
    assert "git-create" in out.stdout and "aws-create" in out.stdout


def test_readme_documents_every_user_table(tmp_path: Path) -> None:
    import orbits_nb as ob
    from orbits_nb.store.schema import USER_TABLES

    text = README.read_text()
    tables = text[text.index("### Tables"):]
    missing = [name for name in USER_TABLES if f"| `{name}`" not in tables]
    assert missing == []
    store = ob.DuckDBStore(tmp_path / "s.duckdb")
    present = {name for (name,) in store.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")}
    store.close()
    assert set(USER_TABLES) <= present
