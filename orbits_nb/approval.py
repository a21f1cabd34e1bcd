"""Human approval: a step that pauses its run until a person approves or rejects it.

``await self.do("approve-prod", Approval(prompt="Deploy acme to production?"))``
records a request in the ``approvals`` table and waits (as a watcher: the run holds no
thread meanwhile). Approve or reject it from the run monitor in JupyterLab, with
``orbits-nb approve RUN_ID STEP`` / ``reject``, or with :func:`decide`. The decision
(who, when, comment) is stored; approving returns it as the step's result, rejecting
fails the step with :class:`ApprovalRejected`.

The request lives in the state file, so it survives a kernel restart: re-running the
workflow waits on the same request, and a decision taken meanwhile is picked up.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from orbits_nb.core.action import IN_PROGRESS, Action
from orbits_nb.core.errors import InvalidArgument, OrbitsError, RunNotFound, StoreBusy
from orbits_nb.core.masking import mask
from orbits_nb.core.serde import check_json, dumps, loads, mask_json
from orbits_nb.executors.local import LocalExecutor

if TYPE_CHECKING:
    from orbits_nb.store.duckdb_store import DuckDBStore

DECISIONS = ("approved", "rejected")

_LATEST = """
WITH latest AS (
  SELECT a.*, row_number() OVER (PARTITION BY a.run_id, a.step
                                 ORDER BY a.requested_at DESC) AS n
  FROM approvals a)
SELECT l.request_id, l.run_id, l.step, l.prompt, l.details, l.requested_at,
  l.requested_by, s.status
FROM latest l JOIN steps s ON s.run_id = l.run_id AND s.step = l.step
WHERE l.n = 1 AND l.decision IS NULL AND s.status NOT IN ('succeeded', 'failed')
"""


class ApprovalRejected(OrbitsError):
    """Somebody rejected an approval step (fields: run_id, step, by, at, comment)."""


@dataclass(frozen=True)
class PendingApproval:
    """A request waiting for a decision."""

    request_id: str
    run_id: str
    step: str
    prompt: str
    details: Any
    requested_at: float
    requested_by: str
    step_status: str


@dataclass(frozen=True)
class Decision:
    request_id: str
    run_id: str
    step: str
    decision: str
    by: str
    at: float
    comment: str

    def as_result(self) -> dict[str, Any]:
        return {"approved": self.decision == "approved", "by": self.by,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.at)),
                "comment": self.comment}


def current_user() -> str:
    """Who is deciding: ``ORBITS_NB_USER``, the JupyterHub user, else the OS user."""
    for variable in ("ORBITS_NB_USER", "JUPYTERHUB_USER"):
        value = os.environ.get(variable)
        if value:
            return value
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


class Approval(Action):
    """Pause the run until a person approves (the result) or rejects (the step fails).

    >>> class Release(Workflow):                              # doctest: +SKIP
    ...     async def define(self):
    ...         ok = await self.do("approve", Approval(prompt="Ship v2 to prod?"))
    ...         return ok["by"]
    """

    #: Seconds between two looks at the store for a decision.
    poll_interval: ClassVar[float] = 1.0

    def __init__(self, prompt: str = "Approve to continue?", *, details: Any = None,
                 **args: Any) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidArgument(f"Approval(prompt={prompt!r}) needs a non-empty question "
                                  "for the person deciding")
        super().__init__(prompt=prompt, details=details, **args)
        # The request lives in this process's store: never ship it to another executor.
        self.executor = LocalExecutor()

    def _store(self) -> DuckDBStore:
        try:
            store: DuckDBStore = self.engine.store
        except RuntimeError:
            raise OrbitsError(f"step {self.step!r} (Approval) must run in the process of its "
                              "engine; do not give it another executor",
                              run_id=self.run_id, step=self.step) from None
        return store

    def main(self) -> Any:
        store = self._store()
        request = reusable_request(store, self.run_id, self.step)
        if request is None:
            request = create_request(store, self.run_id, self.step, self.args["prompt"],
                                     self.args.get("details"))
        self.bag["request"] = request
        return self.watch()

    def watch(self) -> Any:
        try:
            decision = lookup(self._store(), str(self.bag["request"]))
        except StoreBusy:
            return IN_PROGRESS  # the file is busy elsewhere: look again next poll
        if decision is None:
            return IN_PROGRESS
        if decision.decision == "approved":
            return decision.as_result()
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(decision.at))
        raise ApprovalRejected(
            f"approval {self.step!r} of run {self.run_id!r} was rejected by {decision.by} "
            f"at {when}" + (f": {decision.comment}" if decision.comment else ""),
            run_id=self.run_id, step=self.step, by=decision.by, at=decision.at,
            comment=decision.comment)


def create_request(store: DuckDBStore, run_id: str, step: str, prompt: str,
                   details: Any = None) -> str:
    request_id = uuid.uuid4().hex
    details = check_json(details, f"details of approval {step!r}")
    with store.connection() as con:
        con.execute("INSERT INTO approvals (request_id, run_id, step, prompt, details, "
                    "requested_at, requested_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [request_id, run_id, step, mask(prompt),
                     None if details is None else mask_json(dumps(details)), time.time(),
                     current_user()])
    return request_id


def reusable_request(store: DuckDBStore, run_id: str, step: str) -> str | None:
    """The request of an earlier execution of this step that still stands.

    Undecided or approved requests stand (the kernel died or the run was cancelled
    while waiting); a rejected one, or one older than a reset of the step, does not.
    """
    rows = store.fetch(
        "SELECT request_id, decision FROM approvals WHERE run_id = ? AND step = ? AND "
        "requested_at > coalesce((SELECT max(ts) FROM events WHERE run_id = ? AND "
        "kind = 'run.reset' AND list_contains(CAST(data->'steps' AS VARCHAR[]), ?)), 0) "
        "ORDER BY requested_at DESC LIMIT 1", [run_id, step, run_id, step])
    if rows and rows[0][1] != "rejected":
        return str(rows[0][0])
    return None


def lookup(store: DuckDBStore, request_id: str) -> Decision | None:
    """The decision taken on ``request_id``, or None while it is pending."""
    rows = store.fetch("SELECT run_id, step, decision, decided_by, decided_at, comment "
                       "FROM approvals WHERE request_id = ?", [request_id])
    if not rows:
        raise OrbitsError(f"approval request {request_id!r} is not in {store.path}; was the "
                          "state file replaced?", request=request_id)
    run_id, step, decision, by, at, comment = rows[0]
    if decision is None:
        return None
    return Decision(request_id, run_id, step, decision, by or "", float(at), comment or "")


def pending(store: DuckDBStore, run_id: str | None = None) -> list[PendingApproval]:
    """Approvals waiting for a decision (of ``run_id`` and its nested runs, or all)."""
    query, params = _LATEST, []
    if run_id is not None:
        query += " AND (l.run_id = ? OR starts_with(l.run_id, ?))"
        params = [run_id, run_id + "/"]
    rows = store.fetch(query + " ORDER BY l.requested_at", params)
    return [PendingApproval(r[0], r[1], r[2], r[3] or "", loads(r[4]), float(r[5]),
                            r[6] or "", r[7]) for r in rows]


def decide(store: DuckDBStore, run_id: str, step: str, decision: str, *,
           by: str | None = None, comment: str | None = None,
           via: str = "api") -> Decision:
    """Approve or reject the pending approval ``step`` of ``run_id``.

    ``step`` may be a path into nested workflows (``deploy/approve``). Raises
    RunNotFound for an unknown run, and OrbitsError naming what is pending when
    there is nothing to decide.
    """
    if decision not in DECISIONS:
        raise InvalidArgument(f"decision {decision!r}: use 'approved' or 'rejected'")
    if not isinstance(step, str) or not step.strip("/"):
        raise InvalidArgument(f"step {step!r} names no step; give a step key, e.g. "
                              "'approve-prod' (or 'deploy/approve' in a nested run)")
    step = step.strip("/")
    root = run_id
    if "/" in step:
        nested, _, step = step.rpartition("/")
        run_id = f"{run_id}/{nested}"
    if not store.exists:  # nothing can be pending: do not create the file to say so
        raise _nothing_pending(store, root, run_id, step)
    by = by or current_user()
    now = time.time()
    with store.connection() as con:
        con.execute("BEGIN")
        try:
            rows = con.execute(_LATEST + " AND l.run_id = ? AND l.step = ?",
                               [run_id, step]).fetchall()
            if not rows:
                con.execute("ROLLBACK")
                raise _nothing_pending(store, root, run_id, step)
            request_id = str(rows[0][0])
            con.execute("UPDATE approvals SET decision = ?, decided_by = ?, decided_at = ?, "
                        "comment = ?, decided_via = ? WHERE request_id = ?",
                        [decision, by, now, mask(comment or ""), via, request_id])
            con.execute("COMMIT")
        except OrbitsError:
            raise
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return Decision(request_id, run_id, step, decision, by, now, comment or "")


def check_run(store: DuckDBStore, run_id: str, nested_in: str | None = None) -> None:
    """Raise RunNotFound unless ``run_id`` is recorded (a nested run of ``nested_in``)."""
    if not isinstance(run_id, str) or not run_id:
        raise InvalidArgument(f"run id {run_id!r} must be a non-empty string")
    if store.fetch("SELECT 1 FROM events WHERE run_id = ? LIMIT 1", [run_id]):
        return
    if nested_in is not None:
        raise RunNotFound(f"run {nested_in!r} has no nested run {run_id[len(nested_in) + 1:]!r}"
                          f" in {store.path}", run_id=run_id,
                          hint=f"see its steps with ob.get_run({nested_in!r}).steps()",
                          cli_hint=f"see its steps with `orbits-nb show {nested_in}`")
    raise RunNotFound(f"no run {run_id!r} in {store.path}", run_id=run_id,
                      hint="list runs with ob.history()",
                      cli_hint="list runs with `orbits-nb runs`")


def _nothing_pending(store: DuckDBStore, root: str, run_id: str, step: str) -> OrbitsError:
    check_run(store, root)
    if run_id != root:
        check_run(store, run_id, nested_in=root)
    root = root.split("/", 1)[0]
    waiting = [f"{p.run_id[len(root) + 1:] + '/' if p.run_id != root else ''}{p.step}"
               for p in pending(store, root)]
    decided = store.fetch("SELECT decision, decided_by FROM approvals WHERE run_id = ? AND "
                          "step = ? ORDER BY requested_at DESC LIMIT 1", [run_id, step])
    steps = [r[0] for r in store.fetch("SELECT step FROM steps WHERE run_id = ? ORDER BY pos",
                                       [run_id])]
    if decided and decided[0][0]:
        why = f"it was already {decided[0][0]} by {decided[0][1]}"
    elif step not in steps:
        why = f"the run has no step {step!r} (steps: {', '.join(steps) or 'none'})"
    else:
        why = "no approval request is waiting there"
    hint = (f"pending in this run: {', '.join(waiting)}" if waiting
            else "nothing is pending in this run (list them with `orbits-nb approvals`)")
    return OrbitsError(f"cannot decide step {step!r} of run {run_id!r}: {why}; {hint}",
                       run_id=run_id, step=step)
