"""The run list verb (``Store.run_page``) on every store: filters, search, paging,
had_failures that survive a later success, who and where, and the work time."""

from __future__ import annotations

import pytest
from stores import any_store, location, pg_server  # noqa: F401

import orbits_nb as ob
from orbits_nb.core.rows import Batch, RunQuery
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store


def created(run_id: str, ts: float, workflow: str = "m:Deploy", *,
            source: str = "kernel", **args: object) -> Event:
    meta = {"source": source, "user": "ana", "host": "box"}
    return Event(run_id, "run.created", data={"workflow": workflow, "args": args,
                                              "meta": meta}, ts=ts)


def started(run_id: str, ts: float, **data: object) -> Event:
    return Event(run_id, "run.started", data={"host": "box", "pid": 7, **data}, ts=ts)


def step(run_id: str, kind: str, ts: float, attempt: int = 1, key: str = "a") -> Event:
    data = {"action": "m:A", "name": key, "pos": 0} if kind == "step.started" else {}
    return Event(run_id, kind, step=key, attempt=attempt, data=data, ts=ts)


def ended(run_id: str, kind: str, ts: float) -> Event:
    data = {"error": {"type": "E", "message": "boom"}} if kind == "run.failed" else {}
    return Event(run_id, kind, data=data, ts=ts)


@pytest.fixture
def runs(any_store: Store) -> Store:  # noqa: F811
    """Six runs: a clean success, a run that failed and then succeeded on a second
    execution, a step retried into success, a failed run, a nested failure, a pending
    run of another workflow started by a script."""
    e: list[Event] = []
    e += [created("ok", 10, client="acme", env="prod"), started("ok", 11),
          step("ok", "step.started", 11), step("ok", "step.succeeded", 13),
          ended("ok", "run.succeeded", 14)]
    e += [created("fixed", 20, client="acme", env="dev"), started("fixed", 21),
          step("fixed", "step.started", 21), step("fixed", "step.failed", 22),
          ended("fixed", "run.failed", 22), Event("fixed", "run.reset", ts=30,
                                                  data={"steps": ["a"]}),
          started("fixed", 40, worker="w-1"), step("fixed", "step.started", 40),
          step("fixed", "step.succeeded", 45), ended("fixed", "run.succeeded", 45)]
    e += [created("retried", 50, client="globex", env="prod"), started("retried", 51),
          step("retried", "step.started", 51), step("retried", "step.retrying", 52),
          step("retried", "step.started", 53, attempt=2),
          step("retried", "step.succeeded", 54, attempt=2),
          ended("retried", "run.succeeded", 54)]
    e += [created("broken", 60, client="initech", env="prod"), started("broken", 61),
          step("broken", "step.started", 61), step("broken", "step.failed", 62),
          ended("broken", "run.failed", 62)]
    e += [created("parent", 70, client="acme", env="qa"), started("parent", 71),
          Event("parent/child", "run.created", ts=72,
                data={"workflow": "m:Child", "parent_run_id": "parent", "args": {}}),
          started("parent/child", 72), step("parent/child", "step.started", 72),
          step("parent/child", "step.retrying", 73),
          step("parent/child", "step.started", 74, attempt=2),
          step("parent/child", "step.succeeded", 75, attempt=2),
          ended("parent/child", "run.succeeded", 75), ended("parent", "run.succeeded", 76)]
    e += [created("later", 80, "m:Report", source="script", day="monday")]
    any_store.write(Batch(events=e))
    return any_store


def ids(store: Store, **filters: object) -> list[str]:
    return [r.run_id for r in store.run_page(RunQuery(**filters)).rows]  # type: ignore[arg-type]


def test_newest_first_with_the_total_and_nested_runs_left_out(runs: Store) -> None:
    page = runs.run_page(RunQuery())
    assert [r.run_id for r in page.rows] == ["later", "parent", "broken", "retried",
                                             "fixed", "ok"]
    assert page.total == 6


def test_had_failures_keeps_runs_that_failed_once_and_were_fixed(runs: Store) -> None:
    assert ids(runs, had_failures=True) == ["parent", "broken", "retried", "fixed"]
    assert ids(runs, had_failures=False) == ["later", "ok"]
    # The status filter still means the latest status.
    assert ids(runs, status="failed") == ["broken"]
    assert ids(runs, status="succeeded", had_failures=True) == ["parent", "retried",
                                                                 "fixed"]
    flags = {r.run_id: r.had_failures for r in runs.run_page(RunQuery()).rows}
    assert flags == {"later": False, "parent": True, "broken": True, "retried": True,
                     "fixed": True, "ok": False}


def test_search_matches_ids_workflows_and_argument_values(runs: Store) -> None:
    assert ids(runs, search="acme") == ["parent", "fixed", "ok"]
    assert ids(runs, search="ACME prod") == ["ok"]
    assert ids(runs, search="client=acme, env=dev") == ["fixed"]
    assert ids(runs, search="env=prod") == ["broken", "retried", "ok"]
    assert ids(runs, search="report") == ["later"]
    assert ids(runs, search="retr") == ["retried"]
    assert ids(runs, search="client=monday") == []
    assert ids(runs, search="100%") == []  # no wildcard: text is matched as written
    assert ids(runs, search="   ") == ids(runs)


def test_source_workflow_and_since_filters(runs: Store) -> None:
    assert ids(runs, source="script") == ["later"]
    assert ids(runs, source="kernel", workflow="Deploy", since=55.0) == ["parent",
                                                                          "broken"]
    assert runs.run_page(RunQuery(source="worker")).total == 0


def test_pages_are_offset_and_limit_with_the_total_of_all_matches(runs: Store) -> None:
    first = runs.run_page(RunQuery(limit=4))
    second = runs.run_page(RunQuery(limit=4, offset=4))
    assert [r.run_id for r in first.rows] == ["later", "parent", "broken", "retried"]
    assert [r.run_id for r in second.rows] == ["fixed", "ok"]
    assert (first.total, second.total, second.offset, second.limit) == (6, 6, 4, 4)
    past = runs.run_page(RunQuery(limit=4, offset=8))
    assert (past.rows, past.total) == ([], 6)
    failing = runs.run_page(RunQuery(had_failures=True, limit=2, offset=2))
    assert ([r.run_id for r in failing.rows], failing.total) == (["retried", "fixed"], 4)


def test_a_row_says_what_who_where_and_how_long(runs: Store) -> None:
    rows = {r.run_id: r for r in runs.run_page(RunQuery()).rows}
    fixed = rows["fixed"]
    assert fixed.args == {"client": "acme", "env": "dev"}
    assert (fixed.source, fixed.started_by) == ("kernel", "ana@box")
    assert fixed.executions == 2 and fixed.executed_by == "w-1"
    # Work is the two executions (21-22 and 40-45), not the wait between them.
    assert fixed.work_s == pytest.approx(6.0)
    assert rows["ok"].executed_by == "box:7" and rows["ok"].work_s == pytest.approx(3.0)
    later = rows["later"]
    assert (later.status, later.executions, later.work_s, later.executed_by) == (
        "pending", 0, None, None)
    assert later.args == {"day": "monday"} and later.source == "script"


@pytest.mark.parametrize("bad", [
    {"status": "gone"}, {"source": "telepathy"}, {"offset": -1}, {"offset": True},
    {"limit": 0}, {"limit": 10_000}, {"had_failures": "yes"}, {"search": 3},
    {"since": "yesterday"}])
def test_bad_filters_are_refused_by_name(runs: Store, bad: dict[str, object]) -> None:
    name, value = next(iter(bad.items()))
    with pytest.raises(ob.InvalidArgument, match=f"{name}={value!r}"):
        runs.run_page(RunQuery(**bad))  # type: ignore[arg-type]


def test_recent_runs_takes_more_than_one_page(any_store: Store) -> None:  # noqa: F811
    from run_list_data import run_id, write_runs

    write_runs(any_store, 1205)
    found = any_store.recent_runs(limit=1203)
    assert [r.run_id for r in found[:2]] == [run_id(1204), run_id(1203)]
    assert len(found) == 1203 and found[-1].run_id == run_id(2)
    assert len(any_store.recent_runs(limit=5000)) == 1205
