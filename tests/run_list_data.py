"""Many recorded runs, fast: their events written through the store, as executed runs
would have written them, without executing anything (for the run list at scale)."""

from __future__ import annotations

from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store

CLIENTS = ("acme", "globex", "initech", "umbrella", "hooli")
ENVS = ("prod", "staging", "dev")
SOURCES = ("kernel", "script", "runbook", "schedule", "worker")
WORKFLOW = "fleet:DeployTenant"


def run_id(i: int) -> str:
    return f"DeployTenant-{i:05d}"


def kind_of(i: int) -> str:
    """Every 10th run failed, every 7th (not failed) was retried into success, the
    others succeeded at once; the newest run is still pending."""
    if i % 10 == 3:
        return "failed"
    if i % 7 == 5:
        return "retried"
    return "succeeded"


def events_of(i: int, t0: float) -> list[Event]:
    rid, ts = run_id(i), t0 + i * 60.0
    args = {"client": CLIENTS[i % len(CLIENTS)], "env": ENVS[i % len(ENVS)], "n": i}
    meta = {"source": SOURCES[i % len(SOURCES)], "user": "ana", "host": "build-1"}
    out = [Event(rid, "run.created", ts=ts, data={"workflow": WORKFLOW, "args": args,
                                                  "meta": meta}),
           Event(rid, "run.started", ts=ts + 1, data={"host": "build-1", "pid": 4000 + i})]
    step = {"action": "fleet:Deploy", "name": "deploy", "pos": 0}
    out.append(Event(rid, "step.started", step="deploy", attempt=1, ts=ts + 1, data=step))
    kind = kind_of(i)
    if kind == "failed":
        error = {"type": "RuntimeError", "message": f"tenant {i} refused"}
        out += [Event(rid, "step.failed", step="deploy", attempt=1, ts=ts + 3,
                      data={"error": error}),
                Event(rid, "run.failed", ts=ts + 3, data={"error": error})]
        return out
    if kind == "retried":
        out += [Event(rid, "step.retrying", step="deploy", attempt=1, ts=ts + 2,
                      data={"error": {"type": "TimeoutError", "message": "slow"}}),
                Event(rid, "step.started", step="deploy", attempt=2, ts=ts + 3, data={})]
    out += [Event(rid, "step.succeeded", step="deploy", attempt=2 if kind == "retried"
                  else 1, ts=ts + 4, data={"result": i}),
            Event(rid, "run.succeeded", ts=ts + 4, data={"result": i})]
    return out


def write_runs(store: Store, count: int, t0: float = 1.7e9, chunk: int = 1000) -> None:
    """``count`` finished runs of one workflow, one minute apart from ``t0``."""
    for start in range(0, count, chunk):
        batch = Batch()
        for i in range(start, min(count, start + chunk)):
            batch.events += events_of(i, t0)
        store.write(batch)


def expected(count: int) -> dict[str, int]:
    """How many of ``count`` runs each filter matches."""
    kinds = [kind_of(i) for i in range(count)]
    return {"failed": kinds.count("failed"),
            "had_failures": kinds.count("failed") + kinds.count("retried"),
            "acme": sum(1 for i in range(count) if i % len(CLIENTS) == 0)}
