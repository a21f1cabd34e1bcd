"""A missing optional package: one clear error at first use, naming the extra to install.

The checks run in real child processes in which the package cannot be imported
(``sys.modules[name] = None`` makes ``import name`` fail, as in an install without it).
"""

from __future__ import annotations

import ast
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb._optional import check_installed, needs

PACKAGE = Path(__file__).resolve().parents[1] / "orbits_nb"
TESTS = Path(__file__).parent
#: Packages orbits_nb uses when installed but does not depend on.
OPTIONAL = {"boto3", "botocore", "moto", "psycopg", "pandas", "flask", "flask_cors",
            "jupyterlab", "playwright", "dask", "distributed"}
#: The emulator's server process imports moto only after its start-up checked it.
CHECKED_ELSEWHERE = {"aws/_moto_server.py"}

PRELUDE = """
import json, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None          # as if it were not installed
import orbits_nb as ob
heavy = [m for m in ("boto3", "botocore", "moto", "psycopg") if sys.modules.get(m)]
assert not heavy, heavy

def outcome(workflow, engine):
    run = engine.start(workflow)
    try:
        run.wait(120)
    except ob.StepFailed:
        pass
    step = run.state().ordered_steps()[0]
    return {"status": run.status, "attempts": step.attempts,
            "type": step.error["type"], "message": step.error["message"]}
"""


def child(missing: str, body: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``body`` (it prints one JSON line) where ``missing`` cannot be imported."""
    code = PRELUDE + textwrap.dedent(body)
    env = {"PYTHONPATH": f"{PACKAGE.parent}:{TESTS}", "PATH": "/usr/bin:/bin",
           "ORBITS_NB_STATE": str(tmp_path / "state.duckdb"), "HOME": str(tmp_path),
           "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "ORBITS_NB_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-c", code, missing], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


AWS_STEPS = """
from orbits_nb.aws import AccountExecutor, CreateAWSAccount, DeployStack

class Noop(ob.Action):
    def main(self):
        return "ran"

class Account(ob.Workflow):
    async def define(self):
        return await self.do("aws-create", CreateAWSAccount(name="acme",
                                                            email="aws+acme@example.com"))

class Stack(ob.Workflow):
    async def define(self):
        return await self.do("iac-deploy", DeployStack(stack_name="acme", template="{}"))

class InAccount(ob.Workflow):
    async def define(self):
        return await self.do("inside", Noop(),
                             executor=AccountExecutor(account_id="123456789012"))

engine = ob.Engine(":memory:")
out = {name: outcome(flow(), engine) for name, flow in
       (("account", Account), ("stack", Stack), ("executor", InAccount))}
try:
    ob.aws.client("s3")
except ob.MissingDependency as err:
    out["client"] = {"type": type(err).__name__, "message": str(err),
                     "extra": err.extra, "is_import_error": isinstance(err, ImportError)}
engine.close()
print(json.dumps(out))
"""


def test_aws_steps_without_boto3_fail_once_saying_what_to_install(tmp_path: Path) -> None:
    out = child("boto3,botocore", AWS_STEPS, tmp_path)
    for name in ("account", "stack", "executor"):
        step = out[name]
        assert step["status"] == "failed", (name, step)
        assert step["attempts"] == 1, (name, step)  # never retried: installing is the fix
        assert step["type"] == "MissingDependency", (name, step)
        assert "boto3 is not installed" in step["message"], (name, step)
        assert "pip install 'orbits_nb[aws]'" in step["message"], (name, step)
    assert out["client"]["type"] == "MissingDependency"
    assert out["client"]["extra"] == "aws" and out["client"]["is_import_error"]


def test_the_emulator_without_moto_says_to_install_the_demo_extra(tmp_path: Path) -> None:
    out = child("moto", """
        from orbits_nb.aws import Emulator
        try:
            Emulator().start()
        except ob.MissingDependency as err:
            print(json.dumps({"message": str(err), "package": err.package}))
    """, tmp_path)
    assert out["package"] == "moto"
    assert "pip install 'orbits_nb[demo]'" in out["message"]
    assert "local AWS emulator" in out["message"]


def test_postgres_migrations_without_psycopg_fail_once(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001.sql").write_text("CREATE TABLE t (id INT);\n")
    out = child("psycopg", f"""
        from orbits_nb.actions import RunSQLMigrations

        class Migrate(ob.Workflow):
            async def define(self):
                return await self.do("sql", RunSQLMigrations(
                    folder={str(tmp_path / "migrations")!r},
                    database="postgresql://app@127.0.0.1:1/app"))

        engine = ob.Engine(":memory:")
        print(json.dumps(outcome(Migrate(), engine)))
        engine.close()
    """, tmp_path)
    assert out["status"] == "failed" and out["attempts"] == 1
    assert out["type"] == "MissingDependency"
    assert "pip install 'orbits_nb[postgres]'" in out["message"]


def test_a_table_without_pandas_says_to_install_it(tmp_path: Path) -> None:
    out = child("pandas", """
        from orbits_nb.engine.table import Table
        try:
            Table(["a"], [{"a": 1}]).df()
        except ob.MissingDependency as err:
            print(json.dumps({"message": str(err), "extra": err.extra}))
    """, tmp_path)
    assert out["extra"] is None
    assert "pandas is not installed; install it with pip install pandas" in out["message"]


def test_the_error_travels_between_processes_and_is_an_import_error() -> None:
    err = ob.MissingDependency("boto3 missing", package="boto3", extra="aws", feature="x")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ob.MissingDependency) and isinstance(back, ImportError)
    assert isinstance(back, ob.OrbitsError)
    assert (str(back), back.package, back.extra) == ("boto3 missing", "boto3", "aws")


def test_helpers_name_the_missing_piece() -> None:
    with pytest.raises(ob.MissingDependency, match=r"no_such_mod_x is not installed; "
                                                   r"install it with pip install "
                                                   r"'orbits_nb\[aws\]'"):
        with needs("aws", "a feature"):
            import no_such_mod_x  # type: ignore[import-not-found]  # noqa: F401
    with pytest.raises(ob.MissingDependency, match="no_such_mod_y is not installed"):
        check_installed(("json", "no_such_mod_y"), "demo", "a feature")
    check_installed(("json",), "demo", "a feature")


def _guarded_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``with needs(...)`` blocks or ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        guarded = isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call)
            and getattr(item.context_expr.func, "id", "") == "needs" for item in node.items)
        guarded |= isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        if guarded:
            for child_node in ast.walk(node):
                if hasattr(child_node, "lineno"):
                    lines.add(child_node.lineno)
    return lines


def test_every_optional_import_says_what_to_install() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in CHECKED_ELSEWHERE:
            continue
        tree = ast.parse(path.read_text())
        guarded = _guarded_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                if module.split(".")[0] in OPTIONAL and node.lineno not in guarded:
                    offenders.append(f"{relative}:{node.lineno} import {module}")
    assert offenders == []
