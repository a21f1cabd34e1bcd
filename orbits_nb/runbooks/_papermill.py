"""The papermill engine of orbits-nb (imported only when a runbook executes).

It is papermill's own nbclient engine with four differences: the kernel gets the
runner's environment and working directory, the runner learns the kernel's pid as
soon as it starts, every save of the output notebook is scrubbed of secret values
first (with stream outputs coalesced per cell, so no secret is split between two;
papermill itself is given no output path, so it writes nothing unscrubbed),
and the runner's header and bootstrap cells are placed around papermill's injected
parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.log import logger

from orbits_nb.runbooks.report import BOOTSTRAP_TAG, HEADER_TAG, scrub

ENGINE_NAME = "orbits_nb"
_V4: Any = nbformat.v4  # nbformat ships no type hints


@dataclass
class Hooks:
    """What one execution needs from the runner (passed through papermill's kwargs)."""

    env: dict[str, str]
    cwd: Path
    secrets: list[str]
    header: str
    bootstrap: str | None
    on_kernel: Callable[[int], None]
    #: Where the output is recorded (papermill metadata) and saved during execution
    #: (None: only at the end, by the runner).
    output: str | None = None
    save_to: str | None = None
    #: The notebook being executed (the manager's, kept current).
    nb: Any = None
    kernel_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _ScrubbingManager(NotebookExecutionManager):  # type: ignore[misc]
    """Saves the notebook only after replacing secret values in it."""

    secrets: list[str] = []

    def save(self, **kwargs: Any) -> None:
        scrub(self.nb, self.secrets)
        super().save(**kwargs)


def _place_cells(nb: Any, hooks: Hooks) -> None:
    head = _V4.new_markdown_cell(hooks.header)
    head.metadata["tags"] = [HEADER_TAG]
    cells = list(nb.cells)
    if hooks.bootstrap:
        boot = _V4.new_code_cell(hooks.bootstrap)
        boot.metadata["tags"] = [BOOTSTRAP_TAG]
        boot.metadata["jupyter"] = {"source_hidden": True}
        after = 0
        for index, cell in enumerate(cells):
            tags = cell.get("metadata", {}).get("tags", [])
            if "injected-parameters" in tags or "parameters" in tags:
                after = index + 1
        cells.insert(after, boot)
    nb.cells = [head, *cells]


class OrbitsEngine(NBClientEngine):  # type: ignore[misc]
    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, *, output_path: str | None = None,
                         progress_bar: bool = True, log_output: bool = False,
                         autosave_cell_every: int = 30, orbits_hooks: Hooks | None = None,
                         **kwargs: Any) -> Any:
        assert orbits_hooks is not None
        hooks = orbits_hooks
        _place_cells(nb, hooks)
        nb.metadata.setdefault("papermill", {})["output_path"] = hooks.output
        # papermill hands the engine no output path (its own saves would not be
        # scrubbed); this manager saves, scrubbed, where the runner said.
        nb_man = _ScrubbingManager(nb, output_path=hooks.save_to, progress_bar=progress_bar,
                                   log_output=log_output,
                                   autosave_cell_every=autosave_cell_every)
        nb_man.secrets = hooks.secrets
        hooks.nb = nb_man.nb
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output,
                                         orbits_hooks=hooks, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
            hooks.nb = nb_man.nb
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, *,
                                 log_output: bool = False, stdout_file: Any = None,
                                 stderr_file: Any = None, start_timeout: float = 60,
                                 execution_timeout: float | None = None,
                                 orbits_hooks: Hooks | None = None, **kwargs: Any) -> Any:
        assert orbits_hooks is not None
        hooks = orbits_hooks
        client = PapermillNotebookClient(
            nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
            kernel_name=kernel_name, log=logger, log_output=log_output,
            stdout_file=stdout_file, stderr_file=stderr_file,
            # ipykernel's start-up warnings (TCP on loopback) are noise in a report.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            # One stream output per cell and name: a secret written in several pieces
            # is whole again when the notebook is scrubbed.
            coalesce_streams=True)

        def started(**_: Any) -> None:
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            if isinstance(pid, int):
                hooks.kernel_pid = pid
                hooks.on_kernel(pid)

        client.on_notebook_start = started
        return client.execute(env=hooks.env, cwd=str(hooks.cwd))


def register() -> str:
    """Register the engine with papermill (idempotent) and return its name."""
    papermill_engines.register(ENGINE_NAME, OrbitsEngine)
    return ENGINE_NAME
