"""The command verb of the store, on every store: request events past a seq."""

from __future__ import annotations

import pytest
from stores import Location, location, pg_server  # noqa: F401

from orbits_nb import InvalidArgument
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event


def asked(run_id: str, via: str = "cli") -> Event:
    return Event(run_id, "run.cancel_requested", data={"by": "u@h", "via": via, "at": 1.0})


def test_commands_are_the_requests_of_the_runs_asked_for_past_a_seq(
        location: Location) -> None:  # noqa: F811
    store = location.open()
    assert store.commands(["r1"], 0) == ([], 0)  # an empty store: nothing, nothing made
    store.write(Batch(events=[Event("r1", "run.created"), asked("r1"), asked("r2"),
                              Event("r1", "step.started", "s", 1), Event("r1", "run.meta")]))
    events, after = store.commands(["r1"], 0)
    assert [(e.run_id, e.kind, e.data["via"]) for e in events] == [
        ("r1", "run.cancel_requested", "cli")]
    assert after == max(e.seq or 0 for e in store.load_run("r1") + store.load_run("r2"))
    assert store.commands(["r1", "r2"], after) == ([], after)  # nothing new
    assert [e.run_id for e in store.commands(["r1", "r2"], 0)[0]] == ["r1", "r2"]
    assert store.commands([], 0)[0] == []

    store.write(Batch(events=[asked("r2", "notebook"), asked("r3")]))
    events, later = store.commands(["r2"], after)
    assert [(e.run_id, e.data["via"]) for e in events] == [("r2", "notebook")]
    assert later > after and events[0].seq is not None and events[0].seq > after


def test_requests_written_by_another_store_object_are_seen(location: Location  # noqa: F811
                                                          ) -> None:
    if not location.shared:
        pytest.skip("an in-memory store is reached by nobody else")
    owner, other = location.open(), location.open(host="host-b")
    owner.write(Batch(events=[Event("r1", "run.created")]))
    _, after = owner.commands(["r1"], 0)
    other.write(Batch(events=[asked("r1")]))
    other.close()
    events, _ = owner.commands(["r1"], after)
    assert [e.kind for e in events] == ["run.cancel_requested"]


@pytest.mark.parametrize("after", [-1, 1.5, True, "3"])
def test_a_bad_seq_is_refused_before_the_store_is_touched(location: Location,  # noqa: F811
                                                         after: object) -> None:
    store = location.open()
    with pytest.raises(InvalidArgument, match="needs a seq"):
        store.commands(["r1"], after)  # type: ignore[arg-type]
    assert not store.exists or store.commands(["r1"], 0) == ([], 0)


def test_keeping_an_in_memory_store_open_keeps_what_it_holds() -> None:
    from orbits_nb.store import open_store

    store = open_store(":memory:")
    store.write(Batch(events=[Event("r1", "run.created")]))
    with store.keep_open():  # commands hold the store this way for a few verbs
        store.write(Batch(events=[asked("r1")]))
    assert [e.kind for e in store.load_run("r1")] == ["run.created", "run.cancel_requested"]
