"""Pure drift comparison: normalization, server-managed fields, list semantics, paths."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import pickle
import subprocess
import sys
import uuid
from pathlib import PurePosixPath

import pytest

from orbits_nb.core.drift import (
    ABSENT,
    DRIFTED,
    IN_SYNC,
    MISSING_STATUS,
    Comparison,
    Element,
    FieldDiff,
    Key,
    diff,
    matches,
    normalize,
    parse_pattern,
    render_path,
    strip,
    verdict,
)
from orbits_nb.core.errors import InvalidArgument, OrbitsError


class Color(enum.Enum):
    RED = "red"


def paths(diffs: list[FieldDiff]) -> list[str]:
    return [d.path for d in diffs]


# -- normalization ----------------------------------------------------------------------
def test_values_that_serialize_differently_compare_equal() -> None:
    desired = {"n": 1, "f": 2.5, "items": [1, 2], "blob": "abc",
               "when": "2026-01-02T03:04:05+00:00",
               "id": "12345678-1234-5678-1234-567812345678", "path": "/srv/x", "color": "red",
               "ratio": 0.5, "ttl": 90, "tags": ["a", "b"], "ports": {"80": "http"}}
    actual = {"n": 1.0, "f": decimal.Decimal("2.5"), "items": (1, 2), "blob": b"abc",
              "when": dt.datetime(2026, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
              "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
              "path": PurePosixPath("/srv/x"), "color": Color.RED, "ratio": 0.1 + 0.4,
              "ttl": dt.timedelta(seconds=90), "tags": {"b", "a"}, "ports": {80: "http"}}
    assert diff(desired, actual) == []


def test_bool_is_not_int_and_strings_are_not_numbers() -> None:
    assert paths(diff({"on": True, "port": 8080}, {"on": 1, "port": "8080"})) == ["on", "port"]


def test_nan_and_binary_are_stable() -> None:
    assert normalize(float("nan")) == "NaN"
    assert normalize(b"\xff\x00") == "base64:/wA="
    assert diff({"x": float("nan")}, {"x": float("nan")}) == []


def test_unsupported_values_are_rejected_with_their_path() -> None:
    with pytest.raises(InvalidArgument, match=r"observed state at 'spec\.handle'.*object"):
        diff({}, {"spec": {"handle": object()}})


def test_float_noise_is_not_drift_but_real_change_is() -> None:
    assert diff({"x": 0.3}, {"x": 0.1 + 0.2}) == []
    assert paths(diff({"x": 0.3}, {"x": 0.31})) == ["x"]
    assert paths(diff({"x": 10**17}, {"x": 10**17 + 1})) == ["x"]


# -- structure --------------------------------------------------------------------------
def test_field_level_diff_reports_path_desired_and_actual() -> None:
    desired = {"spec": {"replicas": 2, "image": "app:1"}, "labels": {"team": "core"}}
    actual = {"spec": {"replicas": 3, "image": "app:1"}, "labels": {"team": "core", "x": "1"}}
    found = diff(desired, actual)
    assert [d.to_json() for d in found] == [
        {"path": "labels.x", "change": "added", "desired": None, "actual": "1"},
        {"path": "spec.replicas", "change": "changed", "desired": 2, "actual": 3},
    ]


def test_removed_fields_and_ordered_lists_by_position() -> None:
    found = diff({"a": 1, "l": [1, 2, 3]}, {"l": [1, 5]})
    assert [(d.path, d.change) for d in found] == [("a", "removed"), ("l[1]", "changed"),
                                                   ("l[2]", "removed")]
    assert found[0].actual is ABSENT


def test_server_managed_fields_are_ignored_with_wildcards() -> None:
    rules = Comparison(ignore=("id", "meta.*", "**.etag", "items[*].updated"))
    desired = {"name": "x", "items": [{"v": 1}], "nested": {"deep": {"v": 1}}}
    actual = {"name": "x", "id": "i-123", "meta": {"created": 1, "owner": "me"},
              "items": [{"v": 1, "updated": 5}],
              "nested": {"deep": {"v": 1, "etag": "abc"}, "etag": "z"}}
    assert diff(desired, actual, rules) == []
    actual["name"] = "y"
    assert paths(diff(desired, actual, rules)) == ["name"]


def test_unordered_lists_compare_as_multisets_with_element_diffs() -> None:
    rules = Comparison(unordered=("tags",))
    assert diff({"tags": ["a", "b", "b"]}, {"tags": ["b", "a", "b"]}, rules) == []
    found = diff({"tags": ["a", "b"]}, {"tags": ["b", "c"]}, rules)
    assert [(d.path, d.change, d.desired, d.actual) for d in found] == [
        ("tags[]", "removed", "a", ABSENT), ("tags[]", "added", ABSENT, "c")]
    # Without the declaration, order matters.
    assert paths(diff({"tags": ["a", "b"]}, {"tags": ["b", "a"]})) == ["tags[0]", "tags[1]"]


def test_unordered_lists_of_objects_ignore_server_fields_inside_elements() -> None:
    rules = Comparison(unordered=("rules",), ignore=("rules[*].id",))
    desired = {"rules": [{"port": 80}, {"port": 443}]}
    actual = {"rules": [{"port": 443, "id": "r2"}, {"port": 80, "id": "r1"}]}
    assert diff(desired, actual, rules) == []


def test_keyed_lists_match_elements_by_key() -> None:
    rules = Comparison(keys={"columns": "name"})
    desired = {"columns": [{"name": "id", "type": "INTEGER"}, {"name": "v", "type": "TEXT"}]}
    actual = {"columns": [{"name": "v", "type": "VARCHAR"}, {"name": "id", "type": "INTEGER"},
                          {"name": "extra", "type": "INTEGER"}]}
    found = diff(desired, actual, rules)
    assert paths(found) == ["columns[name=extra]", "columns[name=v].type"]
    assert found[1].desired == "TEXT"
    assert found[1].actual == "VARCHAR"
    # Patterns can name a keyed element.
    rules2 = Comparison(keys={"columns": "name"}, ignore=("columns[name=extra]",))
    assert paths(diff(desired, actual, rules2)) == ["columns[name=v].type"]


def test_keyed_list_without_usable_keys_falls_back_to_unordered() -> None:
    rules = Comparison(keys={"items": "name"})
    assert diff({"items": [1, 2]}, {"items": [2, 1]}, rules) == []


def test_verdict_statuses() -> None:
    assert verdict({"a": 1}, None) == (MISSING_STATUS, [])
    assert verdict({"a": 1}, {"a": 1}) == (IN_SYNC, [])
    status, found = verdict({"a": 1}, {"a": 2})
    assert status == DRIFTED
    assert paths(found) == ["a"]


def test_strip_removes_only_ignored_fields() -> None:
    rules = Comparison(ignore=("size", "**.mtime"))
    assert strip(normalize({"size": 1, "content": "x", "sub": {"mtime": 3, "k": 1}}), rules) == \
        {"content": "x", "sub": {"k": 1}}


# -- paths ------------------------------------------------------------------------------
def test_paths_render_like_python_and_parse_back() -> None:
    path = ("files", "README.md", 0, Key("name", "id"), Element(), "ok")
    text = render_path(path)
    assert text == 'files["README.md"][0][name=id][].ok'
    assert parse_pattern(text) == path
    assert parse_pattern("a.*.b[**]") == ("a", "*", "b", "**")


def test_pattern_matching() -> None:
    assert matches(parse_pattern("a.**.z"), ("a", "b", "c", "z"))
    assert matches(parse_pattern("a.**.z"), ("a", "z"))
    assert not matches(parse_pattern("a.*"), ("a", "b", "c"))
    assert matches(parse_pattern("l[*]"), ("l", 3))
    assert not matches(parse_pattern("l[1]"), ("l", "1"))


@pytest.mark.parametrize("bad", ["", "a..b", ".a", "a[", "a[x y]", 3])
def test_bad_patterns_are_rejected_naming_them(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="path"):
        parse_pattern(bad)  # type: ignore[arg-type]


def test_comparison_rejects_a_bare_string_instead_of_a_tuple() -> None:
    with pytest.raises(InvalidArgument, match="tuple of field paths"):
        Comparison(ignore="mtime")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="key field"):
        Comparison(keys={"columns": ""})


def test_field_diff_json_round_trip_and_pickle() -> None:
    for item in (FieldDiff("a", 1, 2), FieldDiff("b", ABSENT, 3), FieldDiff("c", None, ABSENT)):
        assert FieldDiff.from_json(item.to_json()) == item
        assert pickle.loads(pickle.dumps(item)) == item
    assert FieldDiff("a", "x" * 100, ABSENT).describe(20).endswith("-> (absent)")


def test_core_drift_imports_nothing_heavy() -> None:
    code = ("import sys, orbits_nb.core.drift; bad = [m for m in ('duckdb', 'ipywidgets', "
            "'IPython', 'pandas') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_errors_are_orbits_errors() -> None:
    with pytest.raises(OrbitsError):
        normalize({1j: 2})


SAME_CASES = [
    # (desired (normalized), observed, rules): the shortcut must agree with verdict().
    ({"a": 1, "b": [1, "x", None]}, {"a": 1, "b": [1, "x", None]}, Comparison()),
    ({"a": 1}, {"a": True}, Comparison()),
    ({"a": 1}, {"a": 1.0}, Comparison()),
    ({"a": 1.5}, {"a": 1.5}, Comparison()),
    ({"a": "1"}, {"a": 1}, Comparison()),
    ({"a": {"b": 1}}, {"a": {"b": 1}, "status": "UP"}, Comparison(ignore=("status",))),
    ({"a": {"b": 1}}, {"a": {"b": 1}, "status": "UP"}, Comparison()),
    ({"a": {}}, {"a": {"etag": "x"}}, Comparison(ignore=("a.etag",))),
    ({}, {"etag": "x"}, Comparison(ignore=("etag",))),
    ({"l": [{"k": 1}]}, {"l": [{"k": 1, "id": 9}]}, Comparison(ignore=("l[*].id",))),
    ({"l": [1, 2]}, {"l": [2, 1]}, Comparison(unordered=("l",))),
    ({"l": [1, 2]}, {"l": (1, 2)}, Comparison()),
    ({"a": Color.RED.value}, {"a": Color.RED}, Comparison()),
    ({"a": 1}, {}, Comparison()),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, Comparison()),
]


@pytest.mark.parametrize(("desired", "actual", "rules"), SAME_CASES)
def test_the_equality_shortcut_of_drift_checks_never_contradicts_the_field_diff(
        desired: object, actual: object, rules: Comparison) -> None:
    from orbits_nb.resources.check import same

    shortcut = same(desired, actual, rules.ignored)
    status, _ = verdict(desired, actual, rules)
    assert not shortcut or status == IN_SYNC  # "same" is a proof of being in sync


def test_the_equality_shortcut_takes_the_common_cases() -> None:
    from orbits_nb.resources.check import same

    state = {"template": "sha256:01", "parameters": {"Client": "acme"},
             "resources": {"Queue": {"VisibilityTimeout": "120"}}}
    rules = Comparison(ignore=("status",))
    assert same(state, {**state, "status": "UPDATE_COMPLETE"}, rules.ignored)
    assert not same(state, {**state, "parameters": {"Client": "other"}}, rules.ignored)
    assert not same({"on": True}, {"on": 1}, rules.ignored)
