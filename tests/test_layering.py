"""The picture stays true: a pure core, lazy heavy imports, no import side effects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "orbits_nb"
IO_LIBRARIES = {"duckdb", "boto3", "botocore", "dask", "distributed", "ipywidgets",
                "anywidget", "papermill", "nbclient", "nbformat", "graphviz", "IPython",
                "psycopg", "requests", "urllib3", "pandas"}
LAYER_OF = {"core": 0, "engine": 1}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_no_io_library_and_no_adapter() -> None:
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for name in imports_of(path):
            top = name.split(".")[0]
            adapter = name.startswith("orbits_nb.") and not name.startswith("orbits_nb.core")
            if top in IO_LIBRARIES or adapter:
                offenders.append(f"{path.name}: {name}")
    # Workflow.start() reaches the engine through one lazy import, by design.
    allowed = {"workflow.py: orbits_nb.engine.engine", "workflow.py: orbits_nb.engine.run"}
    assert sorted(set(offenders) - allowed) == []


def test_adapters_are_not_imported_by_the_engine() -> None:
    offenders = []
    for path in (PACKAGE / "engine").rglob("*.py"):
        for name in imports_of(path):
            if name.split(".")[0] in {"boto3", "papermill", "ipywidgets", "graphviz"}:
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_import_is_lazy_and_has_no_side_effects(tmp_path: Path) -> None:
    code = (
        "import sys, threading, os\n"
        "before = set(os.listdir('/proc/self/fd'))\n"
        "import orbits_nb as ob\n"
        "heavy = sorted(m for m in ('duckdb','ipywidgets','papermill','graphviz','boto3',"
        "'pandas','IPython','nbclient') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "print('THREADS', threading.active_count())\n"
        "print('FDS', len(set(os.listdir('/proc/self/fd')) - before))\n"
        "ob.Workflow; ob.Action; ob.Secret\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "THREADS 1" in out.stdout
    assert "FDS 0" in out.stdout
    assert not list(tmp_path.iterdir())
