"""Bad policies and class attributes are refused where they enter, naming the value."""

from __future__ import annotations

from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.store.integrity import check


@pytest.mark.parametrize(("kwargs", "shown"), [
    ({"attempts": "3"}, "'3'"),
    ({"attempts": 0.5}, "0.5"),
    ({"attempts": 0}, "0"),
    ({"attempts": True}, "True"),
    ({"attempts": 2.0}, "2.0"),
    ({"delay": "1"}, "'1'"),
    ({"delay": -1}, "-1"),
    ({"delay": float("nan")}, "nan"),
    ({"backoff": "2"}, "'2'"),
    ({"backoff": 0.5}, "0.5"),
    ({"max_delay": None}, "None"),
    ({"on": ("ConnectionError",)}, "'ConnectionError'"),
    ({"on": (42,)}, "42"),
    ({"on": "ConnectionError"}, "'ConnectionError'"),
    ({"on": (ConnectionError, int)}, "int"),
    ({"on": None}, "None"),
])
def test_a_bad_retry_policy_is_refused_naming_the_value(kwargs: dict[str, Any],
                                                         shown: str) -> None:
    with pytest.raises(ob.InvalidArgument) as info:
        ob.Retry(**kwargs)
    assert shown in str(info.value)
    assert isinstance(info.value, ob.OrbitsError)


def test_a_retry_policy_normalises_what_it_accepts() -> None:
    assert ob.Retry(on=ConnectionError).on == (ConnectionError,)
    assert ob.Retry(on=[ConnectionError, TimeoutError]).on == (ConnectionError, TimeoutError)
    policy = ob.Retry(attempts=3, delay=1, backoff=2, max_delay=5)
    assert (policy.attempts, policy.delay, policy.backoff) == (3, 1.0, 2.0)
    assert policy.retries(ConnectionError()) is True
    assert ob.Retry(on=ConnectionError).retries(ValueError()) is False
    assert ob.Retry(attempts=10_000, delay=1.0, backoff=10.0).delay_for(5000) == 300.0


def test_a_retry_policy_never_retries_what_a_retry_cannot_fix() -> None:
    policy = ob.Retry(attempts=5, on=(Exception,))
    assert not policy.retries(ModuleNotFoundError("No module named 'boto4'"))
    assert not policy.retries(ImportError("cannot import name 'x'"))
    assert not ob.Retry(attempts=5, on=ImportError).retries(ImportError("x"))
    assert not policy.retries(ob.StepTimeout("late"))


@pytest.mark.parametrize(("attribute", "value", "shown"), [
    ("timeout", "600", "'600'"),
    ("timeout", -1, "-1"),
    ("timeout", 0, "0"),
    ("timeout", [5], "[5]"),
    ("poll_interval", "5", "'5'"),
    ("poll_interval", -0.1, "-0.1"),
    ("poll_interval", None, "None"),
    ("poll_interval", float("inf"), "inf"),
    ("retry", 3, "3"),
    ("retry", ob.Retry, "Retry"),
    ("retry", {"attempts": 3}, "'attempts'"),
])
def test_wrong_class_attributes_are_refused_when_the_class_is_defined(
        attribute: str, value: Any, shown: str) -> None:
    with pytest.raises(ob.InvalidArgument) as info:
        type("CreateAccount", (ob.Action,), {attribute: value, "main": lambda self: 1})
    message = str(info.value)
    assert f"CreateAccount.{attribute}" in message
    assert shown in message


def test_good_class_attributes_are_accepted() -> None:
    class Fine(ob.Action):
        retry = ob.Retry(attempts=2)
        timeout = 30
        poll_interval = 0

    class Unlimited(Fine):
        timeout = None

    assert Fine.timeout == 30 and Unlimited.timeout is None


def test_a_define_that_is_not_async_is_refused_at_class_definition() -> None:
    with pytest.raises(ob.InvalidArgument,
                       match=r"DeployBackend.define must be `async def define\(self\)`"):
        class DeployBackend(ob.Workflow):
            def define(self) -> Any:  # type: ignore[override]
                return 1

    with pytest.raises(ob.InvalidArgument, match="Gen.define must be `async def"):
        class Gen(ob.Workflow):
            async def define(self) -> Any:  # type: ignore[override]
                yield 1


COUNTS: dict[str, int] = {}


class Later(ob.Action):
    def main(self) -> Any:
        COUNTS["later"] = COUNTS.get("later", 0) + 1
        return "ran"


class UsesLater(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("later", Later())


def test_an_attribute_broken_after_the_class_statement_fails_when_the_step_starts(
        engine: ob.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Later, "timeout", "soon")
    run = engine.start(UsesLater())
    with pytest.raises(ob.InvalidArgument, match=r"Later.timeout must be a number, got 'soon'"):
        run.wait(30)
    assert run.status == "failed"
    assert "later" not in run.state().steps  # nothing half-written
    assert COUNTS == {}
    assert check(engine.store) == []


def test_a_define_made_sync_after_the_class_statement_fails_the_run_clearly(
        engine: ob.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UsesLater, "define", lambda self: "not a coroutine")
    run = engine.start(UsesLater(), fresh=True)
    with pytest.raises(ob.InvalidArgument, match="UsesLater.define must be `async def"):
        run.wait(30)
    assert run.status == "failed"


class Missing(ob.Action):
    retry = ob.Retry(attempts=5, delay=0.01, on=(Exception,))

    def main(self) -> Any:
        COUNTS[self.args["how"]] = COUNTS.get(self.args["how"], 0) + 1
        if self.args["how"] == "module":
            import orbits_nb_no_such_module  # type: ignore[import-not-found]  # noqa: F401
        from orbits_nb import no_such_name  # type: ignore[attr-defined]  # noqa: F401


class Imports(ob.Workflow):
    async def define(self) -> Any:
        executor = ob.SubprocessExecutor() if self.args.get("subprocess") else None
        return await self.do("import", Missing(how=self.args["how"]), executor=executor)


@pytest.mark.parametrize("how", ["module", "name"])
@pytest.mark.parametrize("subprocess", [False, True])
def test_an_import_error_is_never_retried(engine: ob.Engine, how: str,
                                          subprocess: bool) -> None:
    COUNTS.clear()
    run = engine.start(Imports(how=how, subprocess=subprocess))
    with pytest.raises(ob.StepFailed):
        run.wait(60)
    step = run.state().steps["import"]
    assert step.attempts == 1
    assert step.error["type"] in ("ModuleNotFoundError", "ImportError")
    if not subprocess:
        assert {how: 1} == COUNTS
