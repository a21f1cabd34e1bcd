"""Replay gives back exactly what the first execution returned, for every JSON value.

The codec of the event log is checked on its own, through a real DuckDB file, through
a workflow run and its replay by another engine, and from a fresh process.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polling import until

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.serde import MAX_DEPTH, check_json, dumps_record, loads, loads_record
from orbits_nb.core.state import Event
from orbits_nb.store.duckdb_store import DuckDBStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV_VAR = "ORBITS_NB_TEST_CODEC_TOKEN"


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down: 1 is not 1.0, -0.0 is not 0.0,
    True is not 1, and dict keys come in the same order (iterative: values are deep)."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if x != y or math.copysign(1.0, x) != math.copysign(1.0, y):
                return False
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            pending += [(x[k], y[k]) for k in x]
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pending += list(zip(x, y, strict=True))
        elif isinstance(x, ob.Secret):
            if (x.name, x.env_var) != (y.name, y.env_var):
                return False
        elif x != y:
            return False
    return True


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


SECRET = ob.Secret("codec-literal-0042", name="literal")
ENV_SECRET = ob.Secret.from_env(ENV_VAR, name="from-env")

keys = st.one_of(st.text(max_size=8), st.sampled_from(
    ["$secret", "$$secret", "$$$secret", "env", "", "\x00", "é", "😀", "$ref"]))
atoms = st.one_of(
    st.none(), st.booleans(),
    st.integers(),                                   # unbounded: beyond 64 bits too
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 5e-324, 1.7976931348623157e308, 2**63, -2**63,
                     2**64 - 1, 2**64, -(2**63) - 1, 10**30, -(10**30)]),
    st.text(),                                       # any code point but lone surrogates
    st.sampled_from(["\x00", "a\x00b", "😀🧪", "\u2028\u2029", "\"\\/\b\f\n\r\t", "\x7f"]),
    st.sampled_from([SECRET, ENV_SECRET]),
)
values = st.recursive(atoms, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)), max_leaves=40)


@pytest.fixture(autouse=True)
def _env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "codec-env-value-77")


@settings(max_examples=400, deadline=None)
@given(values)
def test_record_codec_round_trip(value: Any) -> None:
    checked = check_json(value, "value")
    back = loads_record(dumps_record({"result": checked}))["result"]
    assert same(back, checked), (checked, back)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = DuckDBStore(tmp_path_factory.mktemp("codec") / "codec.duckdb")
    yield store
    store.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_round_trip_through_a_real_duckdb_file(module_store: DuckDBStore, value: Any) -> None:
    run_id = f"codec-{uuid.uuid4().hex}"
    checked = check_json(value, "value")
    module_store.write(Batch(events=[
        Event(run_id, "run.created", data={"workflow": "m:W", "args": {"v": checked}}),
        Event(run_id, "step.succeeded", "s", 1, {"result": checked, "bag": {"v": checked}}),
    ]))
    module_store.close()  # read back from the file, not from a connection's cache
    created, done = module_store.load_run(run_id)
    assert same(created.data["args"]["v"], checked)
    assert same(done.data["result"], checked)
    assert same(done.data["bag"]["v"], checked)


CALLS: list[str] = []


class Give(ob.Action):
    def main(self) -> Any:
        CALLS.append(self.step)
        self.bag["kept"] = self.args["value"]
        return self.args["value"]


class Echo(ob.Workflow):
    async def define(self) -> Any:
        result = await self.do("give", Give(value=self.args["value"]))
        return {"step": result, "arg": self.args["value"]}


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_workflow_result_replays_exactly(tmp_path: Path, value: Any) -> None:
    checked = check_json(value, "value")
    path = tmp_path / f"wf-{uuid.uuid4().hex}.duckdb"
    first = ob.Engine(path)
    try:
        run = first.start(Echo(value=checked), fresh=True)
        result = run.wait(60)
    finally:
        first.close()
    assert same(result["step"], checked)
    calls = len(CALLS)
    again = ob.Engine(path)
    try:
        replay = again.start(Echo(value=checked), run_id=run.run_id)
        assert same(replay.wait(60), result)
        state = replay.state()
    finally:
        again.close()
    assert len(CALLS) == calls  # replayed, not run again
    assert same(state.steps["give"].result, checked)
    assert same(state.args["value"], checked)
    assert same(state.steps["give"].args["value"], checked)


EXAMPLES = {
    "big int": 1234567890123456789012345678901,
    "negative big int": -(2**100),
    "u64 edge": [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1],
    "floats": [1.0, 1, -0.0, 0.0, 0.1, 1e300, 5e-324, 123456789.123456789],
    "unicode": {"é": "😀 non-BMP 𝄞", "nul": "a\x00b", "ctl": "\x01\x1f\x7f\u2028"},
    "key order": {"z": 1, "a": 2, "m": {"2": 0, "10": 1, "1": 2}},
    "empties": [[], {}, "", [[]], {"": {}}],
    "looks like a secret": {"$secret": "not-one", "$$secret": 1, "env": "X"},
    "secrets": {"literal": SECRET, "env": ENV_SECRET},
    "deep": nested(MAX_DEPTH - 10),
    "huge": {"list": list(range(100_000)), "text": "x" * 2_000_000},
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_examples_replay_exactly_in_a_fresh_process(name: str, tmp_path: Path) -> None:
    value = check_json(EXAMPLES[name], "value")
    path = tmp_path / "state.duckdb"
    engine = ob.Engine(path)
    try:
        run = engine.start(Echo(value=value))
        result = run.wait(120)
        # In-process replay, same engine: the run is started again and replays.
        assert same(engine.start(Echo(value=value)).wait(120), result)
    finally:
        engine.close()
    assert same(result["step"], value)
    script = textwrap.dedent(f"""
        import pickle, sys
        sys.path.insert(0, {str(HERE)!r})
        import orbits_nb as ob
        from test_codec_roundtrip import CALLS, EXAMPLES, Echo
        from orbits_nb.core.serde import check_json
        engine = ob.Engine({str(path)!r})
        run = engine.start(Echo(value=check_json(EXAMPLES[{name!r}], "value")))
        out = {{"result": run.wait(120), "calls": len(CALLS),
                "state": run.state().steps["give"].result, "run_id": run.run_id}}
        engine.close()
        sys.stdout.buffer.write(pickle.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    out = pickle.loads(done.stdout)
    assert out["run_id"] == run.run_id
    assert out["calls"] == 0  # the fresh process replayed the step
    assert same(out["result"], result)
    assert same(out["state"], value)


def test_secrets_come_back_as_secrets(tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        run = engine.start(Echo(value={"literal": SECRET, "env": ENV_SECRET}))
        run.wait(60)
        replayed = engine.start(Echo(value={"literal": SECRET, "env": ENV_SECRET})).wait(60)
    finally:
        engine.close()
    literal, env = replayed["step"]["literal"], replayed["step"]["env"]
    assert isinstance(literal, ob.Secret)
    assert isinstance(env, ob.Secret)
    assert env.reveal() == "codec-env-value-77"  # reads its variable again
    assert literal == SECRET
    assert literal.name == "literal"
    with pytest.raises(ob.InvalidArgument, match=r"secret 'literal' was read back from the "
                       r"store.*ob\.Secret\.from_env"):
        literal.reveal()


def test_plain_loads_keeps_big_integers_and_leaves_references_alone() -> None:
    text = dumps_record({"n": 10**30, "s": SECRET, "k": {"$secret": "user"}})
    assert loads(text) == {"n": 10**30, "s": {"$secret": "literal"},
                           "k": {"$$secret": "user"}}
    assert type(loads("[1e+30]")[0]) is float


@pytest.mark.parametrize(("value", "problem"), [
    (nested(MAX_DEPTH + 5), f"is nested more than {MAX_DEPTH} levels deep"),
    ({"name": "bad \udc80 byte"}, "at 'name' is not valid Unicode text"),
    ({"\udc80": 1}, "is not valid Unicode text"),
])
def test_unstorable_values_are_refused_where_they_enter(value: Any, problem: str) -> None:
    with pytest.raises(ob.InvalidArgument) as info:
        Give(value=value)
    assert problem in str(info.value)
    assert "argument 'value' of Give" in str(info.value)


WATCH = {"done": False}


class Keep(ob.Action):
    poll_interval = 0.01

    def main(self) -> Any:
        self.bag["kept"] = self.args["value"]
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        return self.bag["kept"] if WATCH["done"] else ob.IN_PROGRESS


class Watching(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("keep", Keep(value=self.args["value"]))


@pytest.mark.parametrize("name", ["big int", "floats", "unicode", "key order",
                                  "looks like a secret", "secrets"])
def test_a_resumed_watcher_gets_its_bag_back_exactly(name: str, tmp_path: Path) -> None:
    value = check_json(EXAMPLES[name], "value")
    path = tmp_path / "state.duckdb"
    WATCH["done"] = False
    first = ob.Engine(path)
    try:
        run = first.start(Watching(value=value))
        until(lambda: run.state().steps.get("keep") and run.state().steps["keep"].watching)
    finally:
        first.close()  # cancels the run: the watcher stays recorded with its bag
    WATCH["done"] = True
    again = ob.Engine(path)
    try:
        assert same(again.start(Watching(value=value)).wait(60), value)
    finally:
        again.close()
