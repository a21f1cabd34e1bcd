"""What ``pip install orbits_nb`` gives a user: declared imports, the wheel, base and demo.

The fast checks read the code and ``pyproject.toml``: every third-party module the
package imports is declared (in the base dependencies or an extra), extras are only
imported lazily, and nothing is declared that the code does not use. The slow ones
build the wheel once, install it in a fresh virtualenv (``python -m venv`` + ``pip``, with
the machine's package indexes), and use it as a user would: the README blocks with only
the base dependencies, then, with ``[demo]`` added, ``orbits-nb demo`` and the live view
of its executed notebook in a real kernel.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_readme import SECTIONS, Block, check_section, reader_env, run_blocks, slug

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
PACKAGE = ROOT / "orbits_nb"
# Declared but never imported by name, and why.
NOT_IMPORTED = {
    "ipykernel": "the kernel that notebooks and runbooks start",
    "graphviz-pure": "its dot program draws diagrams without system Graphviz",
    "jupyterlab": "where users open the notebooks",
    "aws-cdk-lib": "DeployCDKStack runs the user's CDK app, which imports it, in a "
                   "subprocess",
    "constructs": "the CDK app's base classes, imported by that app only",
}


def requirements(extra: str | None = None) -> dict[str, Requirement]:
    lines = PROJECT["dependencies"] if extra is None else \
        PROJECT["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name): Requirement(r) for r in lines}


BASE = requirements()
# ``dev`` serves the test suite: what the package imports must come from the base or
# from a feature extra a user installs.
EXTRAS = {extra: requirements(extra) for extra in PROJECT["optional-dependencies"]
          if extra != "dev"}


@functools.cache
def imports() -> dict[str, list[tuple[Path, int, bool]]]:
    """Third-party top-level modules -> (file, line, imported at module level)."""
    found: dict[str, list[tuple[Path, int, bool]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        eager = _module_level_imports(tree)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "orbits_nb":
                    continue
                found.setdefault(top, []).append((path, node.lineno, id(node) in eager))
    return found


def _module_level_imports(tree: ast.Module) -> set[int]:
    """Import nodes executed when the module is imported (not in functions or TYPE_CHECKING)."""
    eager: set[int] = set()
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            eager.add(id(node))
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                todo += handler.body
        elif isinstance(node, (ast.With, ast.ClassDef)):
            todo += node.body
    return eager


@functools.cache
def distributions() -> dict[str, list[str]]:
    return md.packages_distributions()


def providers(module: str) -> set[str]:
    return {canonicalize_name(d) for d in distributions().get(module, [])}


def where(uses: list[tuple[Path, int, bool]]) -> str:
    return ", ".join(f"{p.relative_to(ROOT)}:{line}" for p, line, _ in uses[:3])


def test_every_third_party_import_is_declared() -> None:
    declared = set(BASE).union(*EXTRAS.values())
    found = imports()
    assert {"duckdb", "yaml", "pandas", "boto3"} <= set(found), "the scan finds nothing"
    undeclared = {}
    for module, uses in found.items():
        dists = providers(module)
        assert dists, f"no installed distribution provides {module} ({where(uses)})"
        if not dists & declared:
            undeclared[module] = f"{sorted(dists)} at {where(uses)}"
    assert not undeclared, f"declare these in pyproject.toml: {undeclared}"


def test_modules_from_extras_are_imported_lazily() -> None:
    eager = {}
    for module, uses in imports().items():
        if providers(module) & set(BASE):
            continue
        at_import = [u for u in uses if u[2]]
        if at_import:
            eager[module] = where(at_import)
    assert not eager, ("import these inside the functions that need them (their extra may "
                       f"be missing): {eager}")


def test_every_declared_dependency_is_used() -> None:
    imported = set().union(*(providers(m) for m in imports()))
    for extra, reqs in [(None, BASE), *EXTRAS.items()]:
        unused = set(reqs) - imported - set(NOT_IMPORTED)
        assert not unused, f"{extra or 'base'} declares {unused}, which nothing imports"


def test_the_import_scan_sees_lazy_and_guarded_imports() -> None:
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\ntry:\n    import c\n"
                     "except ImportError:\n    pass\ndef f():\n    import d\n")
    eager = _module_level_imports(tree)
    names = {n.names[0].name for n in ast.walk(tree)
             if isinstance(n, ast.Import) and id(n) in eager}
    assert names == {"a", "c"}


def test_package_data_ships_every_notebook_and_asset() -> None:
    link = PACKAGE / "notebooks"
    assert link.is_symlink() and link.resolve() == (ROOT / "notebooks").resolve()
    patterns = [p.removeprefix("notebooks/") for p in
                PYPROJECT["tool"]["setuptools"]["package-data"]["orbits_nb"]
                if p.startswith("notebooks/")]
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked, "no notebooks tracked"
    unshipped = [f for f in tracked if not any(
        fnmatch.fnmatch(f.removeprefix("notebooks/"), p) for p in patterns)]
    assert not unshipped, f"add package-data patterns for {unshipped}"


# -- the built wheel, installed ------------------------------------------------------------

def copy_sources(dest: Path) -> Path:
    """The files a clone would have (tracked or new, not ignored), links kept as links."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        source, target = ROOT / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


def clean_env() -> dict[str, str]:
    """Our environment without PYTHONPATH: pip must not see the clone as installed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def pip(python: Path, *args: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, env=clean_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def new_venv(folder: Path, *install: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, env=clean_env())
    python = folder / "bin" / "python"
    pip(python, "install", "--quiet", *install)
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    source = copy_sources(base / "src")
    pip(Path(sys.executable), "wheel", "--no-deps", "--quiet", "-w", str(base / "dist"),
        str(source))
    [built] = (base / "dist").glob("orbits_nb-*.whl")
    return built


@dataclass
class Venv:
    python: Path
    extras: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """One virtualenv per run: the base install first, ``[demo]`` added for the demo."""
    return Venv(new_venv(tmp_path_factory.mktemp("install") / "venv", str(wheel)))


@pytest.fixture
def base_python(venv: Venv) -> Path:
    """The virtualenv while it holds the wheel and its base dependencies only."""
    assert not venv.extras, (f"{venv.extras} already installed: the base-install tests must "
                             "run before the demo test (keep them above it in this file)")
    return venv.python


@pytest.fixture
def demo_python(venv: Venv, wheel: Path) -> Path:
    if "demo" not in venv.extras:
        pip(venv.python, "install", "--quiet", f"{wheel}[demo]")
        venv.extras.add("demo")
    return venv.python


def user_env(tmp_path: Path) -> dict[str, str]:
    return reader_env(keep_pythonpath=False, scratch=tmp_path)


def run_in(python: Path, *args: str, cwd: Path, env: dict[str, str]
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


@pytest.mark.slow
def test_wheel_holds_the_code_the_notebooks_and_the_license(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(meta).decode()
    code = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert not code - names
    for name in ("deploy_backend.ipynb", "fleet.ipynb", "quickstart.ipynb",
                 "assets/backend.yaml", "assets/migrations/001_customers.sql"):
        assert f"orbits_nb/notebooks/{name}" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in metadata
    for requirement in ("pandas", "pyyaml"):
        assert f"Requires-Dist: {requirement}" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not [line for line in requires if "nbclient" in line]  # papermill brings it


@pytest.mark.slow
@pytest.mark.parametrize("title", SECTIONS, ids=[slug(t) for t in SECTIONS])
def test_readme_runs_on_a_base_install(base_python: Path, title: str,
                                       tmp_path: Path) -> None:
    report = check_section(base_python, title, tmp_path, keep_pythonpath=False)
    assert Path(str(report["prefix"])) == base_python.parent.parent


@pytest.mark.slow
def test_base_install_imports_every_module_and_names_missing_extras(
        base_python: Path, tmp_path: Path) -> None:
    script = (
        "import importlib, pkgutil, sys\n"
        "import orbits_nb as ob\n"
        "assert ob.__file__.startswith(sys.prefix), ob.__file__\n"
        "for info in pkgutil.walk_packages(ob.__path__, 'orbits_nb.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "from orbits_nb.actions._sqltargets import PostgresTarget\n"
        "for extra, call in [('aws', lambda: ob.aws.client('sts')),\n"
        "                    ('aws', lambda: ob.aws.AWS().whoami()),\n"
        "                    ('postgres', lambda: PostgresTarget('postgresql://h/db', 't'))]:\n"
        "    try:\n"
        "        call()\n"
        "    except ob.OrbitsError as err:\n"
        "        assert f\"pip install 'orbits_nb[{extra}]'\" in str(err), err\n"
        "    else:\n"
        "        raise SystemExit(f'{extra}: no error without the extra')\n"
        "print('ok')\n")
    done = run_in(base_python, "-c", script, cwd=tmp_path, env=user_env(tmp_path))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    demo = run_in(base_python.with_name("orbits-nb"), "demo", cwd=tmp_path,
                  env=user_env(tmp_path))
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "pip install 'orbits_nb[demo]'" in demo.stderr
    assert "Traceback" not in demo.stderr
    assert not (tmp_path / "output").exists()


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A user's project folder, away from any clone of orbits_nb."""
    folder = tmp_path / "project"
    (folder / ".orbits_nb").mkdir(parents=True)
    return folder


@pytest.mark.slow
def test_demo_from_the_wheel_and_its_live_view(demo_python: Path, user_project: Path,
                                               tmp_path: Path) -> None:
    env = user_env(tmp_path)
    done = run_in(demo_python.with_name("orbits-nb"), "demo", cwd=user_project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every step replayed from the store" in done.stdout
    [out] = (user_project / "output" / "demo").iterdir()
    second = out / "deploy_backend.second.ipynb"
    assert str(second) in done.stdout and (out / "state.duckdb").is_file()
    # The runbook came from the installed package, not from a clone.
    sql = run_in(demo_python.with_name("orbits-nb"), "--state", str(out / "state.duckdb"),
                 "sql", "SELECT DISTINCT notebook FROM notebook_runs", "--json",
                 cwd=user_project, env=env)
    assert sql.returncode == 0, sql.stderr
    [row] = [json.loads(line) for line in sql.stdout.splitlines() if line.strip()]
    notebook = Path(row["notebook"])
    assert notebook.is_relative_to(demo_python.parent.parent / "lib")
    assert notebook.parent.parts[-2:] == ("orbits_nb", "notebooks")
    live_view_shows_the_run(demo_python, second, env)


def live_view_shows_the_run(python: Path, executed: Path, env: dict[str, str]) -> None:
    """Execute the report cells of ``executed`` in a kernel beside it, as JupyterLab would."""
    import nbformat

    notebook = nbformat.read(str(executed), as_version=4)
    cells = [Block("python", c.source, i, "report", None)
             for i, c in enumerate(notebook.cells)
             if c.cell_type == "code" and "orbits-nb-report" in c.metadata.get("tags", [])]
    assert cells, "the executed notebook has no report cell"
    report = run_blocks(python, cells, executed.parent, env)
    shown = "\n".join(report["outputs"])  # type: ignore[arg-type]
    for run_id in notebook.metadata["orbits_nb"]["workflow_runs"]:
        assert run_id in shown
    assert "RunNotFound" not in shown and "succeeded" in shown
