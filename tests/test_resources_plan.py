"""ob.plan() and orbits-nb plan: create / update with diffs / delete / no-op, changing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orbits_nb as ob


class Files(ob.Workflow):
    """Declares its resources (its desired state), and converges them."""

    def resources(self) -> list[ob.Resource]:
        return [ob.LocalFile(str(Path(self.args["root"]) / f"{n}.cfg"), content=f"{n}\n")
                for n in self.args["names"]]

    async def define(self) -> Any:
        for resource in self.resources():
            await self.do(f"file-{Path(resource.args['path']).stem}", resource)
        return len(self.args["names"])


def test_plan_shows_create_update_and_no_op_without_changing_anything(
        engine: ob.Engine, root: Path) -> None:
    target = root / "a.cfg"
    wanted = ob.LocalFile(str(target), content="x=1\n")
    planned = ob.plan(wanted, engine=engine)
    assert [(i.key, i.action) for i in planned] == [(f"LocalFile:{target}", "create")]
    assert not target.exists()
    assert "Plan: 1 to create, 0 to update, 0 to delete." in planned.text()

    class One(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("f", ob.LocalFile(str(target), content="x=1\n"))

    One().run(engine=engine)
    assert [i.action for i in ob.plan(wanted, engine=engine)] == ["no-op"]
    target.write_text("x=2\n")
    [item] = ob.plan(wanted, engine=engine)
    assert item.action == "update" and [d.path for d in item.diffs] == ["content"]
    assert target.read_text() == "x=2\n"


def test_a_workflow_plan_shows_a_dropped_resource_as_a_deletion(
        engine: ob.Engine, root: Path) -> None:
    Files(root=str(root), names=["a", "b"]).run(engine=engine)
    # The same run (same arguments) with its desired state narrowed by hand.
    shrunk = Files(root=str(root), names=["a", "b"])
    shrunk.args = {**shrunk.args}
    shrunk.resources = lambda: [ob.LocalFile(str(root / "a.cfg"), content="a\n")]  # type: ignore[method-assign]
    planned = ob.plan(shrunk, engine=engine)
    assert {(i.key.rsplit("/", 1)[-1], i.action) for i in planned} == {
        ("a.cfg", "no-op"), ("b.cfg", "delete")}
    assert (root / "b.cfg").exists()


def test_cli_plan_exits_1_when_something_would_change(root: Path, state: Path) -> None:
    engine = ob.Engine(state)
    try:
        Files(root=str(root), names=["a"]).run(engine=engine)
    finally:
        engine.close()
    env = {**os.environ, "ORBITS_NB_STATE": str(state)}

    def plan() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "plan"], env=env,
                              capture_output=True, text=True, timeout=120)

    clean = plan()
    assert clean.returncode == 0, clean.stderr
    assert "= LocalFile:" in clean.stdout and "Plan: 0 to create" in clean.stdout
    (root / "a.cfg").write_text("changed\n")
    changed = plan()
    assert changed.returncode == 1
    assert "~ LocalFile:" in changed.stdout and "content" in changed.stdout
    assert (root / "a.cfg").read_text() == "changed\n"
