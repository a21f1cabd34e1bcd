from __future__ import annotations

import pickle

import pytest

import orbits_nb as ob
from orbits_nb.core.serde import check_json, digest, dumps, masked


class Make(ob.Action):
    def main(self) -> str:
        return "ok"


def test_arguments_are_canonical_json() -> None:
    assert dumps({"b": 1, "a": (1, 2)}) == dumps({"a": [1, 2], "b": 1})
    assert digest({"a": 1}) == digest({"a": 1})
    assert Make(tags=("x", "y")).args == {"tags": ["x", "y"]}


@pytest.mark.parametrize(("value", "where"), [
    ({1, 2}, "'items'"),
    ({"nested": [1, object()]}, "Make at 'nested[1]'"),
    (float("nan"), "'items'"),
    ({1: "x"}, "non-string key"),
])
def test_non_serializable_argument_is_named(value: object, where: str) -> None:
    with pytest.raises(ob.InvalidArgument) as info:
        Make(items=value)
    assert where in str(info.value)
    assert "argument 'items' of Make" in str(info.value)


def test_secret_is_masked_and_never_dumped_by_value() -> None:
    secret = ob.Secret("hunter2-token", name="github")
    action = Make(token=secret)
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in action.describe()
    assert "hunter2" not in dumps(action.args)
    assert masked(action.args) == {"token": "****"}
    assert pickle.loads(pickle.dumps(secret)).reveal() == "hunter2-token"


def test_env_secret_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = ob.Secret.from_env("ORBITS_TEST_SECRET")
    with pytest.raises(ob.InvalidArgument, match="ORBITS_TEST_SECRET"):
        secret.reveal()
    monkeypatch.setenv("ORBITS_TEST_SECRET", "abc123")
    assert secret.reveal() == "abc123"
    assert dumps(secret) == '{"$secret":"ORBITS_TEST_SECRET","env":"ORBITS_TEST_SECRET"}'


def test_check_json_passes_plain_data() -> None:
    data = {"a": [1, 2.5, None, True, "x"], "b": {"c": []}}
    assert check_json(data, "value") == data


def test_errors_pickle_with_their_fields() -> None:
    err = ob.StepFailed("run-1", "deploy", ValueError("boom"), 3)
    back = pickle.loads(pickle.dumps(err))
    assert (back.run_id, back.step, back.attempts) == ("run-1", "deploy", 3)
    assert "boom" in str(back)
    remote = pickle.loads(pickle.dumps(ob.RemoteError("X", "msg", "tb")))
    assert (remote.type_name, remote.traceback) == ("X", "tb")
    owned = pickle.loads(pickle.dumps(ob.RunOwned("taken", run_id="r", owner="h:1")))
    assert owned.owner == "h:1"


def test_event_records_keep_big_integers_and_secret_references() -> None:
    from orbits_nb.core.serde import dumps_record, loads

    data = {"big": 2**70, "token": ob.Secret("zz-secret", name="t"), "text": "é"}
    assert loads(dumps_record(data)) == {"big": 2**70, "token": {"$secret": "t"}, "text": "é"}
