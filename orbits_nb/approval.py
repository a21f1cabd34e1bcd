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
from typing import TYPE_CHECKING, Any, ClassVar

from orbits_nb.core.action import IN_PROGRESS, Action
from orbits_nb.core.errors import InvalidArgument, OrbitsError, RunNotFound, StoreBusy
from orbits_nb.core.rows import ApprovalRequest, Decision, PendingApproval
from orbits_nb.core.serde import check_json
from orbits_nb.core.state import fold
from orbits_nb.executors.local import LocalExecutor

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

__all__ = ["DECISIONS", "Approval", "ApprovalRejected", "Decision", "PendingApproval",
           "check_run", "create_request", "current_user", "decide", "lookup", "pending",
           "reusable_request"]

DECISIONS = ("approved", "rejected")

class ApprovalRejected(OrbitsError):
    """Somebody rejected an approval step (fields: run_id, step, by, at, comment)."""


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

    def _store(self) -> Store:
        try:
            store: Store = self.engine.store
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


def create_request(store: Store, run_id: str, step: str, prompt: str,
                   details: Any = None) -> str:
    request_id = uuid.uuid4().hex
    details = check_json(details, f"details of approval {step!r}")
    store.add_approval(ApprovalRequest(request_id, run_id, step, prompt, details,
                                       time.time(), current_user()))
    return request_id


def reusable_request(store: Store, run_id: str, step: str) -> str | None:
    """The request of an earlier execution of this step that still stands.

    Undecided or approved requests stand (the kernel died or the run was cancelled
    while waiting); a rejected one, or one older than a reset of the step, does not.
    """
    return store.standing_approval(run_id, step)


def lookup(store: Store, request_id: str) -> Decision | None:
    """The decision taken on ``request_id``, or None while it is pending."""
    known, decision = store.approval_decision(request_id)
    if not known:
        raise OrbitsError(f"approval request {request_id!r} is not in {store.location}; "
                          "was the state file replaced?", request=request_id)
    return decision


def pending(store: Store, run_id: str | None = None) -> list[PendingApproval]:
    """Approvals waiting for a decision (of ``run_id`` and its nested runs, or all)."""
    return store.pending_approvals(run_id)


def decide(store: Store, run_id: str, step: str, decision: str, *,
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
    request_id = store.decide_approval(run_id, step, decision, by=by, at=now,
                                       comment=comment or "", via=via)
    if request_id is None:
        raise _nothing_pending(store, root, run_id, step)
    return Decision(request_id, run_id, step, decision, by, now, comment or "")


def check_run(store: Store, run_id: str, nested_in: str | None = None) -> None:
    """Raise RunNotFound unless ``run_id`` is recorded (a nested run of ``nested_in``)."""
    if not isinstance(run_id, str) or not run_id:
        raise InvalidArgument(f"run id {run_id!r} must be a non-empty string")
    if store.run_exists(run_id):
        return
    if nested_in is not None:
        raise RunNotFound(f"run {nested_in!r} has no nested run {run_id[len(nested_in) + 1:]!r}"
                          f" in {store.location}", run_id=run_id,
                          hint=f"see its steps with ob.get_run({nested_in!r}).steps()",
                          cli_hint=f"see its steps with `orbits-nb show {nested_in}`")
    raise RunNotFound(f"no run {run_id!r} in {store.location}", run_id=run_id,
                      hint="list runs with ob.history()",
                      cli_hint="list runs with `orbits-nb runs`")


def _nothing_pending(store: Store, root: str, run_id: str, step: str) -> OrbitsError:
    check_run(store, root)
    if run_id != root:
        check_run(store, run_id, nested_in=root)
    root = root.split("/", 1)[0]
    waiting = [f"{p.run_id[len(root) + 1:] + '/' if p.run_id != root else ''}{p.step}"
               for p in pending(store, root)]
    decided = store.last_decision(run_id, step)
    steps = [s.key for s in fold(run_id, store.load_run(run_id)).ordered_steps()]
    if decided:
        why = f"it was already {decided[0]} by {decided[1]}"
    elif step not in steps:
        why = f"the run has no step {step!r} (steps: {', '.join(steps) or 'none'})"
    else:
        why = "no approval request is waiting there"
    hint = (f"pending in this run: {', '.join(waiting)}" if waiting
            else "nothing is pending in this run (list them with `orbits-nb approvals`)")
    return OrbitsError(f"cannot decide step {step!r} of run {run_id!r}: {why}; {hint}",
                       run_id=run_id, step=step)
