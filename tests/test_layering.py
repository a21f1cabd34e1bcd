"""The picture stays true: a pure core, SQL only in the stores, lazy heavy imports, no
import side effects."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "orbits_nb"
IO_LIBRARIES = {"duckdb", "boto3", "botocore", "dask", "distributed", "ipywidgets",
                "anywidget", "papermill", "nbclient", "nbformat", "graphviz", "IPython",
                "psycopg", "requests", "urllib3", "pandas"}
DATABASE_DRIVERS = {"duckdb", "psycopg", "sqlite3"}
#: Modules that speak SQL to the user's own databases, never to the state store: the
#: SQL migration action and the LocalTable example resource.
USER_DATABASES = {"actions/_sqltargets.py", "resources/table.py"}
SQL = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|"
    r"(CREATE|DROP|ALTER)\s+(OR\s+REPLACE\s+)?(TEMP\s+)?(TABLE|VIEW|SEQUENCE|INDEX)|"
    r"BEGIN(\s+TRANSACTION)?\s*$|^\s*(COMMIT|ROLLBACK)\s*$|ON\s+CONFLICT)\b", re.S)


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Modules ``path`` imports; ``runtime_only`` leaves out ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if _type_checking(node):
                skipped |= {id(child) for child in ast.walk(node)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def sql_strings(path: Path) -> list[str]:
    """The string literals (f-string parts joined) of ``path`` that read as SQL."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    inside_fstring = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                      for part in node.values}
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(p.value if isinstance(p, ast.Constant) else "{}"
                                 for p in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docs and id(node) not in inside_fstring:
            texts.append(node.value)
    # Adjacent literals are one string to the parser already; a query split over
    # several f-strings and literals still shows its verbs in one of them.
    return [text for text in texts if SQL.search(text)]


def _outside_store() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).parts[0] != "store"]


def test_core_imports_no_io_library_and_no_adapter() -> None:
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for name in imports_of(path, runtime_only=True):
            top = name.split(".")[0]
            adapter = name.startswith("orbits_nb.") and not name.startswith("orbits_nb.core")
            if top in IO_LIBRARIES or adapter:
                offenders.append(f"{path.name}: {name}")
    # Workflow.start() reaches the engine through one lazy import, by design.
    allowed = {"workflow.py: orbits_nb.engine.engine", "workflow.py: orbits_nb.engine.run"}
    assert sorted(set(offenders) - allowed) == []


def test_the_core_names_no_io_library_even_for_the_type_checker() -> None:
    typed = {f"{path.name}: {name}" for path in (PACKAGE / "core").rglob("*.py")
             for name in imports_of(path) - imports_of(path, runtime_only=True)
             if name.split(".")[0] in IO_LIBRARIES}
    assert typed == set()


def test_sql_lives_only_in_the_stores() -> None:
    offenders = {}
    for path in _outside_store():
        relative = path.relative_to(PACKAGE).as_posix()
        found = sql_strings(path)
        if found and relative not in USER_DATABASES:
            offenders[relative] = [text[:60] for text in found]
    assert offenders == {}


def test_no_database_driver_is_imported_outside_the_stores() -> None:
    offenders = []
    for path in _outside_store():
        relative = path.relative_to(PACKAGE).as_posix()
        for name in imports_of(path, runtime_only=True):
            if name.split(".")[0] in DATABASE_DRIVERS and relative not in USER_DATABASES:
                offenders.append(f"{relative}: {name}")
    assert offenders == []


def test_nothing_outside_the_stores_reaches_into_a_store_module() -> None:
    """Features type against the port and open stores with ``open_store``; only the
    package face (``orbits_nb/__init__.py``, which exports DuckDBStore) names one."""
    allowed_modules = {"orbits_nb.store", "orbits_nb.store.location", "orbits_nb.store.guard"}
    offenders = []
    for path in _outside_store():
        relative = path.relative_to(PACKAGE).as_posix()
        for name in imports_of(path):
            if name.startswith("orbits_nb.store") and name not in allowed_modules and \
                    relative != "__init__.py":
                offenders.append(f"{relative}: {name}")
    assert offenders == []


def test_the_sql_detector_sees_queries(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('Q = "SELECT run_id FROM events WHERE seq > ?"\n'
                      'def f(t):\n    return f"UPDATE {t} SET x = 1"\n'
                      'C = "BEGIN"\nN = "a SELECTion of words from the FROM field"\n')
    assert sorted(s[:6] for s in sql_strings(sample)) == ["BEGIN", "SELECT", "UPDATE"]


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
