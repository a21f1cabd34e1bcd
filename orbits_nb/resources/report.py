"""The drift report: results of one check, and the commands that act on them."""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from orbits_nb.core.drift import DRIFTED, ERROR, IN_SYNC, MISSING_STATUS, STATUSES
from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.engine.table import Table
from orbits_nb.resources.check import ResourceCheck, check_concurrency, check_rows
from orbits_nb.resources.errors import ResourceNotFound

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.engine.engine import Engine
    from orbits_nb.engine.run import Run
    from orbits_nb.resources.widget import DriftWidget

T = TypeVar("T")
Selection = str | ResourceCheck | Iterable[str | ResourceCheck] | None
COLUMNS = ["status", "kind", "identity", "since", "users", "diff"]


def on_engine(engine: Engine, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the engine's loop and wait for it (never from that loop)."""
    loop = engine.loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise OrbitsError("this blocking call cannot run on the engine's own loop (inside "
                          "an async action); call it from a notebook cell, a script, or a "
                          "plain (non-async) action method")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


class DriftReport:
    """The result of :func:`orbits_nb.drift`: one :class:`ResourceCheck` per resource.

    Displayed in JupyterLab it is a widget (status badges, expandable field diffs,
    Reconcile / Accept / Refresh); elsewhere static HTML or text.

    >>> report = ob.drift()                       # doctest: +SKIP
    >>> report.drifted                            # doctest: +SKIP
    >>> report.reconcile()                        # doctest: +SKIP
    """

    def __init__(self, checks: list[ResourceCheck], *, engine: Engine,
                 filters: dict[str, Any], concurrency: int, started_at: float,
                 duration_s: float) -> None:
        self.checks = checks
        self.engine = engine
        self.filters = filters
        self.concurrency = concurrency
        self.started_at = started_at
        self.duration_s = duration_s

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.checks)

    def __iter__(self) -> Iterator[ResourceCheck]:
        return iter(self.checks)

    def __getitem__(self, key: int | str) -> ResourceCheck:
        if isinstance(key, int):
            return self.checks[key]
        found = self.select(key)
        if len(found) != 1:
            raise KeyError(f"{key!r} matches {len(found)} resources; give the full key")
        return found[0]

    def _with(self, status: str) -> list[ResourceCheck]:
        return [c for c in self.checks if c.status == status]

    @property
    def ok(self) -> bool:
        """True when every resource checked is in sync."""
        return all(c.ok for c in self.checks)

    @property
    def drifted(self) -> list[ResourceCheck]:
        return self._with(DRIFTED)

    @property
    def missing(self) -> list[ResourceCheck]:
        return self._with(MISSING_STATUS)

    @property
    def errors(self) -> list[ResourceCheck]:
        return self._with(ERROR)

    @property
    def in_sync(self) -> list[ResourceCheck]:
        return self._with(IN_SYNC)

    def counts(self) -> dict[str, int]:
        return {s: len(self._with(s)) for s in STATUSES}

    def summary(self) -> str:
        """One line, e.g. ``5 resources: 1 drifted, 1 missing, 3 in sync``."""
        parts = [f"{n} {s.replace('_', ' ')}" for s, n in self.counts().items() if n]
        return f"{len(self)} resource(s): " + (", ".join(parts) or "none recorded")

    def select(self, selection: Selection = None, *,
               default: tuple[str, ...] = (DRIFTED, MISSING_STATUS)) -> list[ResourceCheck]:
        """Checks named by key, identity, glob, status or check; None: ``default``."""
        if selection is None:
            return [c for c in self.checks if c.status in default]
        items = [selection] if isinstance(selection, (str, ResourceCheck)) else list(selection)
        chosen: dict[str, ResourceCheck] = {}
        for item in items:
            found = self._match(item)
            if not found:
                known = ", ".join(c.key for c in self.checks[:5]) or "none"
                raise ResourceNotFound(f"{item!r} matches no resource of this report "
                                       f"(keys like: {known})", selection=str(item))
            chosen.update((c.key, c) for c in found)
        return list(chosen.values())

    def _match(self, item: str | ResourceCheck) -> list[ResourceCheck]:
        if isinstance(item, ResourceCheck):
            return [c for c in self.checks if c.key == item.key]
        if not isinstance(item, str):
            raise InvalidArgument(f"select resources by key, identity, status or check, "
                                  f"got {type(item).__name__}")
        if item in STATUSES:
            return self._with(item)
        exact = [c for c in self.checks if item in (c.key, c.identity)]
        return exact or [c for c in self.checks if fnmatch.fnmatchcase(c.key, item)
                         or fnmatch.fnmatchcase(c.identity, item)]

    # -- commands -------------------------------------------------------------------------
    def reconcile(self, selection: Selection = None, *, wait: bool = True,
                  concurrency: int = 8, on_conflict: str = "wait") -> Run | None:
        """Converge the selected resources (default: drifted and missing) in a new run.

        Returns the run (None when nothing is selected). With ``wait`` it blocks until
        the run ends (raising if a resource could not be reconciled) and refreshes the
        selected entries of this report.
        """
        from orbits_nb.resources.commands import Reconcile

        targets = self.select(selection)
        if not targets:
            return None
        workflow = Reconcile(resources=[c.key for c in targets],
                             concurrency=check_concurrency(concurrency),
                             on_conflict=on_conflict)
        run = self.engine.start(workflow, fresh=True)
        if wait:
            try:
                run.wait()
            finally:
                self._recheck([c.key for c in targets])
        return run

    def accept(self, selection: Selection = None, *, on_conflict: str = "wait"
               ) -> list[str]:
        """Adopt the observed state of the selected resources (default: drifted) as
        their desired state; a missing one is forgotten. Returns the keys accepted."""
        from orbits_nb.resources.commands import accept

        keys = [c.key for c in self.select(selection, default=(DRIFTED,))]
        for key in keys:
            on_engine(self.engine, accept(self.engine, key, on_conflict=on_conflict))
        self._recheck(keys)
        return keys

    def uninstall(self, selection: Selection, *, force: bool = False,
                  release: Iterable[str] = (), wait: bool = True) -> Run:
        """Delete the selected resources in a new run; refused for a resource other
        workflows still use unless they are ``release``-d or ``force`` is given."""
        from orbits_nb.resources.api import start_uninstall

        if selection is None:
            raise InvalidArgument("uninstall() needs the resources to delete (keys, "
                                  "identities or checks); it has no default")
        keys = [c.key for c in self.select(selection)]
        run = start_uninstall(self.engine, keys, force=force, release=release)
        if wait:
            try:
                run.wait()
            finally:
                self.checks = [c for c in self.checks if c.key not in keys or
                               self._still_present(c.key)]
        return run

    def _still_present(self, key: str) -> bool:
        row = self.engine.store.resource(key)
        return row is not None and row.status == "present"

    def refresh(self) -> DriftReport:
        """Check the same resources again (a new, recorded check)."""
        from orbits_nb.resources.api import drift

        return drift(**self.filters, concurrency=self.concurrency, engine=self.engine)

    def _recheck(self, keys: list[str]) -> None:
        from orbits_nb.resources import records

        rows = records.select(self.engine.store, keys=keys)
        fresh = {c.key: c for c in on_engine(self.engine, check_rows(
            self.engine, rows, concurrency=self.concurrency, record=False))}
        self.checks = [fresh.get(c.key, c) for c in self.checks if c.key in fresh or
                       c.key not in keys]

    def history(self, key: str | None = None, *, limit: int = 200) -> duckdb.DuckDBPyRelation:
        """Recorded checks (newest first) of one resource of this report, or of all."""
        from orbits_nb.resources.api import drift_history

        keys = [self[key].key] if key is not None else [c.key for c in self.checks]
        return drift_history(keys=keys, limit=limit, engine=self.engine)

    # -- display --------------------------------------------------------------------------
    def table(self) -> Table:
        rows = [{"status": c.status, "kind": c.kind, "identity": c.identity,
                 "since": _clock(c.since), "users": len(c.users),
                 "diff": "; ".join(d.describe(30) for d in c.diffs[:3]) or c.error or ""}
                for c in self.checks]
        return Table(COLUMNS, rows)

    def to_pandas(self) -> Any:
        return self.table().to_pandas()

    def text(self) -> str:
        head = (f"Drift check at {_clock(self.started_at)} ({self.duration_s:.2f} s): "
                f"{self.summary()}")
        if not self.checks:
            return head
        lines = [head, self.table().text()]
        for check in self.checks:
            if check.diffs:
                lines.append(f"\n{check.key} ({check.status}):")
                lines += [f"  {d.describe(60)}" for d in check.diffs]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from orbits_nb.resources.html import report_html

        return report_html(self)

    def widget(self) -> DriftWidget:
        """The interactive widget of this report (ipywidgets)."""
        from orbits_nb.resources.widget import DriftWidget

        return DriftWidget(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from orbits_nb.resources.widget import bundle

        return bundle(self, self.widget, include, exclude)
