"""An agent for the agent tests, importable by the tests and by their worker processes.

``Service`` keeps its state in a JSON file; each of its steps appends
``<step> <pid>`` to an effects file (fsynced), so a test can count executions.
A step named in the file ``<state>.block`` waits until that file is removed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import orbits_nb as ob
from orbits_nb.core.drift import FieldDiff


def effect(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line} {os.getpid()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def effects(path: Path) -> list[str]:
    """The step names recorded in ``path``, in order."""
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class Write(ob.Action):
    """Write ``fields`` into the state file (merging), after an optional block."""

    def main(self) -> Any:
        state = Path(self.args["state"])
        effect(self.args["effects"], self.args["name"])
        block = Path(str(state) + ".block")
        while block.exists() and block.read_text().strip() == self.args["name"]:
            time.sleep(0.02)
        current = json.loads(state.read_text()) if state.exists() else {}
        current.update(self.args["fields"])
        state.write_text(json.dumps(current))
        return self.args["fields"]


class Service(ob.Resource):
    """A service whose install is two durable steps, with a rollback command."""

    def identity(self) -> str:
        return str(self.args["name"])

    def desired(self) -> Any:
        return {"image": self.args["image"], "replicas": self.args["replicas"]}

    def observe(self) -> Any:
        state = Path(self.args["state"])
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        return {"image": data.get("image"), "replicas": data.get("replicas")}

    def _write(self, name: str, fields: dict[str, Any]) -> Write:
        return Write(name=name, state=self.args["state"], effects=self.args["effects"],
                     fields=fields)

    async def install(self) -> Any:
        await self.do("provision", self._write("provision", {"image": self.target["image"]}))
        await self.do("scale", self._write("scale", {"replicas": self.target["replicas"]}))
        return {"url": f"https://{self.args['name']}.example"}

    async def update(self, diff: list[FieldDiff]) -> Any:
        fields = {d.path: self.target[d.path] for d in diff if d.path in self.target}
        await self.do("patch", self._write("patch", fields))

    async def uninstall(self) -> Any:
        await self.do("remove", self._write("remove", {}))
        Path(self.args["state"]).unlink()

    async def command_rollback(self) -> Any:
        await self.do("rollback", self._write("rollback", {"image": "previous"}))
        return {"rolled_back": True}


class Deploy(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("service", Service(**self.args))


class CycledService(Service):
    """A service whose cycle puts its replicas back, every 50 ms."""

    cycle_every = "50ms"

    async def cycle(self) -> Any:
        await self.do("heal", self._write("heal", {"replicas": self.target["replicas"]}))
        return {"healed": True}


class DeployCycled(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("service", CycledService(**self.args))


class Config(ob.LocalFile):
    """A file observed every 50 ms and put back when it drifted."""

    cycle_every = 0.05
    reconcile_on_cycle = True


class Notes(ob.LocalFile):
    """A file observed every 50 ms, never reconciled by its cycle."""

    cycle_every = 0.05
