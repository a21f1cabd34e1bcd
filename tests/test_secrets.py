"""Secret values never reach the store, logs, errors, alerts, notebooks or the console.

Every known value is masked at every boundary: these tests reveal secrets in the
places users do (exception messages in ``define()``, prints and logs of a step, an
alert built from ``str(StepFailed)``, a runbook's parameters cell) and then look for
the clear value everywhere, including the raw bytes of the DuckDB file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import nbformat
import pytest
from polling import until

import orbits_nb as ob
from orbits_nb.actions import SendSlackAlert
from orbits_nb.actions.receiver import WebhookReceiver
from orbits_nb.approval import decide, pending
from orbits_nb.core import masking
from orbits_nb.core.serde import mask_json
from orbits_nb.runbooks import records
from orbits_nb.store.duckdb_store import DuckDBStore

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]


def fresh(label: str) -> str:
    """A value no other test uses (the masking registry is shared by the process)."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


def store_text(store: DuckDBStore) -> str:
    """Every value of every table and view, cast to text by SQL."""
    tables = [r[0] for r in store.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
    assert {"events", "logs", "approvals", "notebook_runs"} <= set(tables)
    return "\n".join(str(row) for table in tables for row in store.fetch(
        f'SELECT CAST(COLUMNS(*) AS VARCHAR) FROM "{table}"'))


def assert_nowhere(path: Path, *values: str) -> None:
    """None of ``values`` in any table of the state file, nor in its raw bytes."""
    store = DuckDBStore(path)
    try:
        text = store_text(store)
    finally:
        store.close()
    for value in values:
        assert value not in text
        for sibling in path.parent.iterdir():
            if sibling.is_file():
                assert value.encode() not in sibling.read_bytes(), sibling


# -- the registry -------------------------------------------------------------------

def test_literal_secret_is_masked_from_its_creation() -> None:
    value = fresh("literal")
    assert masking.mask(f"a {value} b") == f"a {value} b"
    ob.Secret(value, name="x")
    assert masking.mask(f"a {value} b") == "a **** b"


def test_env_secret_is_masked_once_created_or_revealed(monkeypatch: pytest.MonkeyPatch) -> None:
    early, late = fresh("early"), fresh("late")
    monkeypatch.setenv("ORBITS_NB_TEST_EARLY", early)
    ob.Secret.from_env("ORBITS_NB_TEST_EARLY")
    assert masking.mask(early) == "****"
    secret = ob.Secret.env("ORBITS_NB_TEST_LATE")  # not set yet: nothing to learn
    monkeypatch.setenv("ORBITS_NB_TEST_LATE", late)
    assert masking.mask(late) == late
    assert secret.reveal() == late
    assert masking.mask(f"[{late}]") == "[****]"


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    ob.Secret("abc", name="short")
    assert masking.mask("abc abcd") == "abc abcd"


def test_escaped_spellings_are_masked_too() -> None:
    value = f'p"w<{uuid.uuid4().hex[:6]}>&\\'
    ob.Secret(value)
    for text in (json.dumps({"v": value}), json.dumps(value, ensure_ascii=True), repr(value),
                 f"<td>{__import__('html').escape(value)}</td>"):
        masked = masking.mask(text)
        assert "****" in masked, text
        assert value[4:10] not in masked


def test_mask_json_never_breaks_the_json() -> None:
    ob.Secret("4321", name="pin")
    ob.Secret("null-secret-true", name="x")
    text = '{"n":43210,"t":"a4321b","ok":true,"k4321":[4321.5],"s":"null-secret-true"}'
    out = json.loads(mask_json(text))
    assert "4321" not in json.dumps(out)
    assert out["ok"] is True
    assert out["s"] == "****"


def test_masking_stream_masks_a_secret_written_in_pieces() -> None:
    value = fresh("streamed")
    ob.Secret(value)
    sink = io.StringIO()
    stream = masking.MaskingStream(sink)
    for piece in ("out: ", value[:5], value[5:9], value[9:], " done\nnext ", value[:3]):
        stream.write(piece)
        stream.flush()
    stream.close()
    assert sink.getvalue() == f"out: **** done\nnext {value[:3]}"


# -- the engine -----------------------------------------------------------------------

class Reveal(ob.Workflow):
    async def define(self) -> Any:
        raise ValueError(f"bad token {self.args['token'].reveal()} for {self.args['who']}")


def test_secret_revealed_in_define_is_masked_in_events_and_errors(
        engine: ob.Engine, state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = fresh("define-token")
    monkeypatch.setenv("ORBITS_NB_TEST_DEFINE", value)
    run = engine.start(Reveal(token=ob.Secret(name="t", env="ORBITS_NB_TEST_DEFINE"),
                              who="acme"))
    with pytest.raises(ValueError, match=value):  # the user's own exception is theirs
        run.wait(30)
    assert run.error is not None
    assert run.error["message"] == "bad token **** for acme"
    assert value not in run.error["traceback"]
    assert "bad token ****" in run.error["traceback"]
    engine.close()
    assert_nowhere(state_path, value)


class Leaky(ob.Action):
    def main(self) -> Any:
        key = ob.Secret.from_env("ORBITS_NB_TEST_STEP").reveal()  # not an argument
        print("using", key)
        self.log.warning("the key is %s", key)
        raise ConnectionRefusedError(f"{key} was refused")


class Alerting(ob.Workflow):
    async def define(self) -> Any:
        try:
            await self.do("leak", Leaky())
        except ob.StepFailed as err:
            await self.do("alert", SendSlackAlert(webhook=self.args["webhook"],
                                                  text=str(err)))
            raise


def test_step_failed_text_and_the_slack_alert_are_masked(
        engine: ob.Engine, state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = fresh("step-key")
    monkeypatch.setenv("ORBITS_NB_TEST_STEP", value)
    with WebhookReceiver() as hook:
        run = engine.start(Alerting(webhook=ob.Secret(hook.url, name="slack")))
        with pytest.raises(ob.StepFailed) as info:
            run.wait(60)
        payloads = hook.wait_for(1)
        url = hook.url
    assert value not in str(info.value)
    assert "ConnectionRefusedError: **** was refused" in str(info.value)
    assert len(payloads) == 1
    assert value not in json.dumps(payloads)
    assert "**** was refused" in payloads[0]["text"]
    logs = run.logs("leak")
    assert "using ****" in logs
    assert "the key is ****" in logs
    engine.close()
    assert_nowhere(state_path, value, url)


class Unpicklable(Exception):
    def __init__(self, message: str, handle: Any) -> None:
        super().__init__(message)
        self.handle = handle


class RaisesRemote(ob.Action):
    def main(self) -> Any:
        token = self.args["token"].reveal()
        raise Unpicklable(f"remote failure with {token}", lambda: None)


class Remote(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("remote", RaisesRemote(token=self.args["token"]),
                             executor=ob.SubprocessExecutor())


def test_remote_error_from_a_subprocess_is_masked(
        engine: ob.Engine, state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = fresh("remote-token")
    monkeypatch.setenv("ORBITS_NB_TEST_REMOTE", value)
    run = engine.start(Remote(token=ob.Secret.from_env("ORBITS_NB_TEST_REMOTE")))
    with pytest.raises(ob.StepFailed) as info:
        run.wait(120)
    assert isinstance(info.value.cause, ob.RemoteError)
    assert value not in str(info.value)
    assert value not in info.value.cause.traceback
    assert "remote failure with ****" in str(info.value)
    engine.close()
    assert_nowhere(state_path, value)


class RevealsInside(ob.Action):
    """Creates its secret in the subprocess: the parent never saw the value."""

    def main(self) -> Any:
        value = ob.Secret.from_env(self.args["variable"]).reveal()
        print(f"child printed {value}")
        raise RuntimeError(f"child failed with {value}")


class InsideSubprocess(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("inside", RevealsInside(variable=self.args["variable"]),
                             executor=ob.SubprocessExecutor())


def test_secret_revealed_only_in_a_subprocess_is_masked(
        engine: ob.Engine, state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = fresh("child-only-token")
    monkeypatch.setenv("ORBITS_NB_TEST_CHILD_ONLY", value)
    run = engine.start(InsideSubprocess(variable="ORBITS_NB_TEST_CHILD_ONLY"))
    with pytest.raises(ob.StepFailed) as info:
        run.wait(120)
    assert value not in str(info.value)
    assert "child failed with ****" in str(info.value)
    assert "child printed ****" in run.logs("inside")
    engine.close()
    assert_nowhere(state_path, value)


class Ask(ob.Workflow):
    async def define(self) -> Any:
        token = self.args["token"].reveal()
        return await self.do("approve", ob.Approval(prompt=f"Ship with {token}?",
                                                    details={"token": token}))


def test_approval_request_and_decision_are_masked(engine: ob.Engine,
                                                   state_path: Path) -> None:
    value = fresh("approval-token")
    run = engine.start(Ask(token=ob.Secret(value, name="t")))
    until(lambda: pending(engine.store, run.run_id), timeout=60)
    decide(engine.store, run.run_id, "approve", "approved", by="ops",
                        comment=f"fine, {value} is rotated")
    assert run.wait(60)["approved"] is True
    rows = engine.store.fetch("SELECT prompt, CAST(details AS VARCHAR), comment "
                              "FROM approvals")
    assert rows == [("Ship with ****?", '{"token":"****"}', "fine, **** is rotated")]
    engine.close()
    assert_nowhere(state_path, value)


# -- runbooks -------------------------------------------------------------------------

def test_runbook_secret_defaults_are_masked_everywhere(state: Path, output_dir: Path) -> None:
    token, literal = fresh("env-default"), "pw-literal-default-5150"
    done = subprocess.run(
        [sys.executable, "-m", "orbits_nb.cli", "run", str(FIXTURES / "secret_default.ipynb"),
         "-p", "client", "globex", "--log-output"],
        cwd=ROOT, env={**os.environ, "MY_TOKEN": token, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 1, done.stderr
    console = done.stdout + done.stderr
    assert "revealed in the notebook: **** ****" in console  # --log-output echoed it
    assert "the API rejected **** / ****" in console
    store = DuckDBStore(state)
    try:
        record = records.listing(store)[0]
        logs = store.fetch("SELECT message FROM logs")
    finally:
        store.close()
    assert record.error is not None
    assert record.error["message"] == "the API rejected **** / ****"
    assert ("calling with **** and ****",) in logs
    executed = Path(str(record.output_path))
    outputs = "\n".join(json.dumps(cell.get("outputs", [])) for cell in
                        nbformat.read(str(executed), as_version=4).cells)
    assert "revealed in the notebook: **** ****" in outputs
    for value in (token, literal):
        assert value not in console
        assert value.encode() not in executed.read_bytes()
    assert_nowhere(state, token, literal)


def test_runner_knows_the_values_of_secret_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from orbits_nb.runbooks.parameters import parse_cell, secret_default

    monkeypatch.setenv("RUNNER_VAR", "from-the-environment")
    params = parse_cell(
        'a = ob.Secret.from_env("RUNNER_VAR")\n'
        'b = ob.Secret.env(variable="RUNNER_VAR")\n'
        'c = Secret(env="RUNNER_VAR")\n'
        'd = ob.Secret("literal-secret", name="d")\n'
        'api_token = "by-its-name"\n'
        'note = "by-its-comment"  # secret: a note\n'
        'plain = "not-a-secret"\n'
        'e = ob.Secret.from_env("UNSET_RUNNER_VAR")\n')
    found = {name: secret_default(p) for name, p in params.items()}
    assert found == {"a": "from-the-environment", "b": "from-the-environment",
                     "c": "from-the-environment", "d": "literal-secret",
                     "api_token": "by-its-name", "note": "by-its-comment", "plain": None,
                     "e": None}


def test_an_action_shown_in_a_notebook_masks_known_values() -> None:
    value = fresh("shown")
    ob.Secret(value)
    shown = repr(Leaky(note=f"deploy failed, token {value}"))
    assert value not in shown
    assert "token ****" in shown
