"""Runbook parameters: introspection and validation, all before any kernel starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orbits_nb.core.serde import Secret
from orbits_nb.runbooks import NotebookError, ParameterError
from orbits_nb.runbooks.parameters import Signature, inspect, parse_cell
from orbits_nb.runbooks.values import from_cli, validate

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          check=False, timeout=120)


def sig_of(source: str) -> Signature:
    return Signature(Path("demo.ipynb"), 0, parse_cell(source))


CELL = '''import orbits_nb as ob
client: str = None  # required: the client to deploy
replicas: int = 2  # instances
ratio = 0.5
dry_run = True
tags: list[str] | None = None
labels = {
    "team": "platform",
}  # multi-line default
slack_webhook = ""
api_key = ob.Secret.from_env("API_KEY")
password: str = ""  # secret, required: the admin password
note = "x"  # secret
headless = False
'''


def test_parse_types_defaults_flags_and_help() -> None:
    params = parse_cell(CELL)
    assert list(params) == ["client", "replicas", "ratio", "dry_run", "tags", "labels",
                            "slack_webhook", "api_key", "password", "note", "headless"]
    assert params["client"].type == "str"
    assert params["client"].required
    assert params["client"].help == "the client to deploy"
    assert (params["replicas"].type, params["replicas"].default) == ("int", 2)
    assert params["ratio"].type == "float"
    assert params["dry_run"].type == "bool"
    assert params["tags"].type == "list"
    assert params["tags"].nullable
    assert params["labels"].default == {"team": "platform"}
    assert params["labels"].help == "multi-line default"
    # Secret by name suffix, by Secret default, by comment flag.
    assert params["slack_webhook"].secret
    assert params["api_key"].secret
    assert params["note"].secret
    assert not params["ratio"].secret
    assert params["password"].secret
    assert params["password"].required
    assert params["password"].help == "the admin password"
    assert params["api_key"].describe_default() == 'ob.Secret.from_env("API_KEY")'


@pytest.mark.parametrize(("source", "message"), [
    ("a, b = 1, 2", "one parameter per assignment"),
    ('n: int = "x"', "declared int but its default is 'x'"),
    ("flag: bool = 1", "declared bool"),
    ("n = (", "not valid Python"),
])
def test_badly_declared_parameters_are_named(source: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_cell(source)


def test_cli_values_are_typed_by_declaration() -> None:
    sig = sig_of(CELL)
    values = from_cli(sig, [("client", "42"), ("replicas", "3"), ("ratio", "1"),
                            ("dry_run", "no"), ("tags", '["a", "b"]'), ("tags", "None"),
                            ("labels", '{"x": 1}'), ("slack_webhook", "env:HOOK_VAR"),
                            ("note", "plain-secret")])
    assert values["client"] == "42"  # declared str: no guessing
    assert values["replicas"] == 3
    assert values["ratio"] == 1.0
    assert values["dry_run"] is False
    assert values["tags"] is None
    assert values["labels"] == {"x": 1}
    assert values["slack_webhook"] == Secret(name="slack_webhook", env="HOOK_VAR")
    assert values["note"].reveal() == "plain-secret"


def test_untyped_cli_values_are_read_like_papermill() -> None:
    sig = sig_of("anything = None\n")
    assert from_cli(sig, [("anything", "True")])["anything"] is True
    assert from_cli(sig, [("anything", "12")])["anything"] == 12
    assert from_cli(sig, [("anything", "1.5")])["anything"] == 1.5
    # papermill keeps JSON-looking text as text: so does an untyped parameter.
    assert from_cli(sig, [("anything", "[1]")])["anything"] == "[1]"
    assert from_cli(sig, [("anything", '{"a": 1}')])["anything"] == '{"a": 1}'
    assert from_cli(sig, [("anything", "text")])["anything"] == "text"


@pytest.mark.parametrize(("pairs", "message"), [
    ([("replicas", "two")], "'replicas' of demo.ipynb expects an int, got 'two'"),
    ([("ratio", "nan")], "expects a float"),
    ([("dry_run", "maybe")], "expects a bool"),
    ([("tags", "[1,")], r"expects a list \(as JSON\)"),
    ([("replica", "2")], "unknown parameter 'replica'.*did you mean 'replicas'"),
])
def test_bad_cli_values_are_rejected(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        from_cli(sig_of(CELL), pairs)


def test_validate_checks_python_values_required_and_secrets(monkeypatch:
                                                             pytest.MonkeyPatch) -> None:
    sig = sig_of(CELL)
    with pytest.raises(ParameterError, match=r"required parameter\(s\) 'client', 'password'"):
        validate(sig, {"replicas": 1})
    base = {"client": "acme", "password": "hunter22"}
    with pytest.raises(ParameterError, match="expects an int, but the value is True"):
        validate(sig, {**base, "replicas": True})
    with pytest.raises(ParameterError, match="is not JSON-serializable"):
        validate(sig, {**base, "labels": {"when": object()}})
    with pytest.raises(ParameterError, match="API_TOKEN_UNSET, which is not set"):
        validate(sig, {**base, "api_key": Secret.from_env("API_TOKEN_UNSET")})
    with pytest.raises(ParameterError, match="schedule cannot store the value"):
        validate(sig, base, allow_literal_secrets=False)
    with pytest.raises(ParameterError, match="was not recorded; pass it again"):
        validate(sig, {"client": "acme", "password": {"$secret": "password"}})
    monkeypatch.setenv("ADMIN_PW", "from-env")
    values = validate(sig, {"client": "acme", "password": Secret.from_env("ADMIN_PW"),
                            "ratio": 2})
    assert values.public == {"client": "acme", "ratio": 2, "headless": True}
    assert values.masked()["password"] == "****"
    assert values.recorded()["password"] == {"$secret": "password", "env": "ADMIN_PW"}
    assert "from-env" not in json.dumps(values.recorded())


def test_inspect_a_notebook_and_cli_params() -> None:
    sig = inspect(FIXTURES / "bad_params.ipynb")
    assert sig.cell == 1
    assert [p.name for p in sig.parameters.values()] == ["client", "replicas", "ratio",
                                                          "dry_run", "tags"]
    out = cli("params", str(FIXTURES / "bad_params.ipynb"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:6] == ["name", "type", "default", "required", "secret", "help"]
    client = next(line for line in lines if line.startswith("client"))
    assert "str | None" in client
    assert "true" in client
    assert "the client to deploy" in client
    rows = [json.loads(line) for line in cli("params", str(FIXTURES / "success.ipynb"),
                                             "--json").stdout.splitlines()]
    token = next(r for r in rows if r["name"] == "api_token")
    assert token["secret"] is True
    assert token["type"] == "str"
    none = cli("params", str(FIXTURES / "kill_kernel.ipynb"))
    assert "has no cell tagged 'parameters'" in none.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "client"], "expected 2 arguments"),
    (["-p", "replicas", "2"], "needs a value for required parameter(s) 'client'"),
    (["-p", "client", "acme", "-p", "replicas", "two"], "expects an int, got 'two'"),
    (["-p", "client", "acme", "-p", "replica", "3"],
     "unknown parameter 'replica' for bad_params.ipynb; did you mean 'replicas'?"),
    (["-p", "client", "acme", "-j", "{not json"], "--parameters-json is not valid JSON"),
    (["-p", "client", "acme", "--kernel", "no-such-kernel"], "no Jupyter kernel named"),
])
def test_run_rejects_bad_input_before_a_kernel_starts(tmp_path: Path, args: list[str],
                                                      message: str) -> None:
    state = tmp_path / "state.duckdb"
    out = cli("--state", str(state), "run", str(FIXTURES / "bad_params.ipynb"), *args,
              "--output-dir", str(tmp_path / "out"))
    assert out.returncode == 2
    assert message in out.stderr
    assert not (tmp_path / "out").exists()  # no kernel, no executed notebook
    assert not state.exists()  # nothing recorded either


def test_parameters_file_and_notebook_errors(tmp_path: Path) -> None:
    params = tmp_path / "p.yaml"
    params.write_text("client: acme\nreplicas: many\n")
    out = cli("--state", str(tmp_path / "s.duckdb"), "run",
              str(FIXTURES / "bad_params.ipynb"), "-f", str(params))
    assert out.returncode == 2
    assert "expects an int, but the value is 'many'" in out.stderr
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    for target, message in ((tmp_path / "missing.ipynb", "does not exist"),
                            (bad, "not valid notebook JSON"),
                            (params, "not a notebook")):
        with pytest.raises(NotebookError, match=message):
            inspect(target)


def test_help_is_fast_and_imports_no_papermill() -> None:
    code = ("import sys, orbits_nb.cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('papermill', 'nbclient', 'nbformat', 'croniter') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, timeout=60, cwd=ROOT)
    for command in ("run", "params", "resume", "schedule", "scheduler"):
        assert command in out.stdout
    assert "HEAVY []" in out.stdout


def test_typed_readings_that_papermill_would_not_inject_are_noted() -> None:
    sig = sig_of(CELL)
    notes: list[str] = []
    values = from_cli(sig, [("client", "42"), ("replicas", "3"), ("ratio", "2"),
                            ("dry_run", "yes"), ("tags", "[1]"), ("headless", "True")],
                      notes=notes)
    assert values == {"client": "42", "replicas": 3, "ratio": 2.0, "dry_run": True,
                      "tags": [1], "headless": True}
    # Read as papermill reads them ("3" -> 3, "True" -> True): nothing to say.
    assert [n.split(" is read as")[0] for n in notes] == [
        "-p client '42'", "-p ratio '2'", "-p dry_run 'yes'", "-p tags '[1]'"]
    assert "where papermill injects 42" in notes[0]
    assert "--raw-types" in notes[0]
    raw = from_cli(sig, [("client", "42"), ("ratio", "2"), ("tags", "[1]")], raw_types=True)
    assert raw == {"client": 42, "ratio": 2, "tags": "[1]"}


def test_raw_types_inject_a_mismatch_with_a_note_instead_of_refusing() -> None:
    sig = sig_of("label = 'x'\nreplicas: int = 2\n")
    with pytest.raises(ParameterError, match="expects a str, but the value is 10.*--raw-types"):
        validate(sig, {"label": 10})
    values = validate(sig, {"label": 10, "replicas": "3"}, raw_types=True)
    assert values.public == {"label": 10, "replicas": "3"}
    assert values.notes == [
        "parameter 'label' of demo.ipynb is declared str, but the value is 10 (int): "
        "injected as it is (--raw-types)",
        "parameter 'replicas' of demo.ipynb is declared int, but the value is '3' (str): "
        "injected as it is (--raw-types)"]


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_not_injected(text: str) -> None:
    sig = sig_of("anything = None\nratio = 0.5\n")
    with pytest.raises(ParameterError, match="not a finite number"):
        validate(sig, from_cli(sig, [("anything", text)]))
    with pytest.raises(ParameterError, match="expects a float"):
        from_cli(sig, [("ratio", text)])


def test_undeclared_names_refused_only_as_near_misses_by_default() -> None:
    sig = sig_of(CELL)
    for typo, meant in (("replica", "replicas"), ("Client", "client"), ("clinet", "client"),
                        ("dry_runs", "dry_run")):
        with pytest.raises(ParameterError, match=f"did you mean {meant!r}.*--allow-undeclared"):
            validate(sig, {"client": "a", "password": "p", typo: 1}, undeclared="near")
    values = validate(sig, {"client": "a", "password": "p", "region": "eu", "x": [1]},
                      undeclared="near")
    assert values.public["region"] == "eu"
    assert values.public["x"] == [1]
    assert [n for n in values.notes if "not declared" in n] == [
        "'region' is not declared by demo.ipynb (injected after its parameters cell), as "
        "papermill does (declare it to have it checked)",
        "'x' is not declared by demo.ipynb (injected after its parameters cell), as "
        "papermill does (declare it to have it checked)"]
    near = validate(sig, {"client": "a", "password": "p", "replica": 1}, undeclared="inject")
    assert near.public["replica"] == 1
    # Schedules and other strict callers: every undeclared name is refused.
    with pytest.raises(ParameterError, match="unknown parameter 'region'"):
        validate(sig, {"client": "a", "password": "p", "region": "eu"})
    with pytest.raises(ParameterError, match="'my-name' is not a Python name"):
        validate(sig, {"my-name": 1}, undeclared="inject")


def test_undeclared_secret_names_stay_secret_and_other_departures_are_noted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sig = sig_of("client = 'a'\napi_token = ''  # secret\nheadless = False\n")
    values = validate(sig, {"db_password": "hunter22", "api_token": "tok-1234"},
                      undeclared="near")
    assert values.secrets["db_password"].reveal() == "hunter22"
    assert "db_password" not in values.public
    assert values.public == {"headless": True}
    assert values.notes == [
        "'db_password' is not declared by demo.ipynb (injected after its parameters cell): "
        "its name marks it secret, so the notebook gets an orbits_nb.Secret (its .reveal() "
        "is the text), never the text itself",
        "secret parameter 'api_token' reaches the notebook as an orbits_nb.Secret (its "
        ".reveal() is the text), not as text in the injected cell",
        "'headless' is set to True, as the runner sets a declared 'headless' parameter; "
        "papermill leaves its default"]
    no_cell = Signature(Path("plain.ipynb"), None)
    with pytest.raises(ParameterError, match="has no parameters cell"):
        validate(no_cell, {"x": 1})
    top = validate(no_cell, {"x": 1}, undeclared="near")
    assert top.notes == ["'x' is not declared by plain.ipynb (it has no cell tagged "
                         "'parameters', so the parameters are injected at the top), as "
                         "papermill does (declare it to have it checked)"]


def test_names_asked_for_are_injected_quietly_even_when_strict() -> None:
    sig = sig_of("label = 'x'\n")
    values = validate(sig, {"PAPERMILL_INPUT_PATH": "in.ipynb"},
                      quiet={"PAPERMILL_INPUT_PATH"})
    assert values.public == {"PAPERMILL_INPUT_PATH": "in.ipynb"}
    assert values.notes == []
