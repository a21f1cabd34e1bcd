"""The papermill engine of orbits-nb (imported only when a runbook executes).

It is papermill's own nbclient engine with four differences: the kernel gets the
runner's environment and working directory, the runner learns the kernel's pid as
soon as it starts, every save of the output notebook is scrubbed of secret values
first (with stream outputs coalesced per cell, so no secret is split between two;
papermill itself is given no output path, so it writes nothing unscrubbed) and goes
through the runner's writer (a local file is replaced atomically, with the mode the
run asked for), and the runner's header and bootstrap cells are placed around
papermill's injected parameters.
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

from orbits_nb.runbooks.outcome import KERNEL_ARGUMENTS
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
    #: The input and output as papermill records them in the notebook's metadata.
    input_path: str | None = None
    output: str | None = None
    #: Saves the notebook during execution (None: only at the end, by the runner).
    save: Callable[[Any], None] | None = None
    #: The manager of a kernel already started for this run (None: nbclient starts one).
    kernel: Any = None
    #: The notebook being executed (the manager's, kept current).
    nb: Any = None
    kernel_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _ScrubbingManager(NotebookExecutionManager):  # type: ignore[misc]
    """Saves the notebook only after replacing secret values in it."""

    secrets: list[str] = []
    writer: Callable[[Any], None] | None = None

    def save(self, **kwargs: Any) -> None:
        if kwargs.get("nb"):  # as papermill's manager: the notebook may be a new copy
            self.nb = kwargs["nb"]
        scrub(self.nb, self.secrets)
        if self.writer is not None:
            self.writer(self.nb)
        self.last_save_time = self.now()


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
        # papermill was given the local file and no output (its own saves would not be
        # scrubbed): record the input and output as the user gave them.
        meta = nb.metadata.setdefault("papermill", {})
        meta["input_path"], meta["output_path"] = hooks.input_path, hooks.output
        nb_man = _ScrubbingManager(nb, output_path=None, progress_bar=progress_bar,
                                   log_output=log_output,
                                   autosave_cell_every=autosave_cell_every)
        nb_man.secrets = hooks.secrets
        nb_man.writer = hooks.save
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
            nb_man, km=hooks.kernel, timeout=execution_timeout,
            startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
            log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
            extra_arguments=list(KERNEL_ARGUMENTS),
            # One stream output per cell and name: a secret written in several pieces
            # is whole again when the notebook is scrubbed.
            coalesce_streams=True)

        def started(**_: Any) -> None:
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            if isinstance(pid, int):
                hooks.kernel_pid = pid
                hooks.on_kernel(pid)

        client.on_notebook_start = started
        # The kernel is shut down at the end as nbclient shuts down its own, also when
        # the runner started it.
        return client.execute(env=hooks.env, cwd=str(hooks.cwd), cleanup_kc=True)


def register() -> str:
    """Register the engine with papermill (idempotent) and return its name."""
    papermill_engines.register(ENGINE_NAME, OrbitsEngine)
    return ENGINE_NAME
