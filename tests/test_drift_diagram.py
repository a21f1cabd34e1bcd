"""The run diagram marks steps whose resource has drifted since they ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbits_nb as ob
from orbits_nb.core.dot import DRIFT_COLOR


class Note(ob.Action):
    def main(self) -> Any:
        return "noted"


class Configure(ob.Workflow):
    async def define(self) -> Any:
        await self.do("note", Note())
        return await self.do("config", ob.LocalFile(self.args["path"], content="debug=false\n"))


def test_drifted_step_is_marked_in_the_diagram(engine: ob.Engine, tmp_path: Path) -> None:
    path = tmp_path / "app.cfg"
    run = engine.start(Configure(path=str(path)))
    run.wait(60)
    before = run.graph().source
    assert "drifted since" not in before

    path.write_text("debug=true\n")  # out of band
    report = ob.drift(engine=engine)
    assert [c.status for c in report.checks] == ["drifted"]

    source = engine.get_run(run.run_id).graph().source
    config_line = next(line for line in source.splitlines()
                       if line.strip().startswith('"config" ['))
    assert "drifted since" in config_line
    assert DRIFT_COLOR in config_line
    note_line = next(line for line in source.splitlines()
                     if line.strip().startswith('"note" ['))
    assert "drifted" not in note_line

    report.reconcile()
    assert "drifted since" not in engine.get_run(run.run_id).graph().source
