"""binder/ installs what the shipped notebooks import (checked against real metadata)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirement_lines() -> list[str]:
    lines = []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def project_extras(lines: list[str]) -> set[str] | None:
    """Extras of the line that installs this project (``.``, ``.[x]``, ``-e .``)."""
    for line in lines:
        match = re.fullmatch(r"(?:-e\s+)?\.(?:\[([\w,\s-]+)\])?", line)
        if match:
            return {e.strip() for e in (match.group(1) or "").split(",") if e.strip()}
    return None


def closure(requirements: list[Requirement]) -> set[str]:
    """Distributions installed by ``requirements`` and, recursively, their requirements."""
    seen: set[str] = set()
    todo = [(r, set(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen and not extras:
            continue
        seen.add(name)
        try:
            needs = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        for text in needs:
            child = Requirement(text)
            marker_env = [{"extra": e} for e in extras or {""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in marker_env):
                todo.append((child, set(child.extras)))
    return seen


def notebook_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        data = json.loads(path.read_text())
        for cell in data["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            # Magics and shell escapes are not Python.
            source = "\n".join(line for line in source.splitlines()
                               if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(source)):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def test_requirements_install_the_project_and_apt_installs_graphviz() -> None:
    lines = requirement_lines()
    extras = project_extras(lines)
    assert extras is not None, "binder/requirements.txt must install the project: '.'"
    unknown = extras - set(PROJECT.get("optional-dependencies", {}))
    assert not unknown, f"unknown extras {unknown}"
    apt = (BINDER / "apt.txt").read_text().split()
    assert "graphviz" in apt


def test_runtime_matches_the_supported_python() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"runtime.txt should read like 'python-3.11', not {runtime!r}"
    assert match.group(1) in SpecifierSet(PROJECT["requires-python"])


def test_binder_installs_every_import_of_the_shipped_notebooks() -> None:
    lines = requirement_lines()
    extras = project_extras(lines) or set()
    wanted = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    wanted += [Requirement(line) for line in lines
               if not line.startswith((".", "-"))]
    installed = closure(wanted) | {canonicalize_name(PROJECT["name"])}
    providers = md.packages_distributions()
    imports = notebook_imports()
    assert "orbits_nb" in imports, "the shipped notebooks should use the project"
    missing = {}
    for module, notebooks in imports.items():
        if module in sys.stdlib_module_names:
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if module == "orbits_nb":
            continue
        if not dists & installed:
            missing[module] = sorted(notebooks)
    assert not missing, f"binder/ does not install: {missing}"


def test_the_check_can_fail() -> None:
    """The closure really excludes what nothing asks for."""
    assert "pytest" not in closure([Requirement(r) for r in PROJECT["dependencies"]])
    assert "papermill" in closure([Requirement(r) for r in PROJECT["dependencies"]])
