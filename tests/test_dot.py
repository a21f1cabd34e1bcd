"""DOT text of runs (pure core): colours by state, edges, clusters, history, condensing."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from orbits_nb.core.dot import STYLES, Picture, display_status, dot_parts, quote, to_dot
from orbits_nb.core.state import RunState, StepState


def step(key: str, pos: int, status: str = "succeeded", parents: list[str] | None = None,
         concurrent: bool = False, action: str = "flows:Act", **extra: object) -> StepState:
    s = StepState(key, name=key, pos=pos, action=action, parents=parents or [],
                  concurrent=concurrent, status=status, attempts=1, started_at=100.0 + pos,
                  finished_at=100.5 + pos if status in ("succeeded", "failed") else None)
    for name, value in extra.items():
        setattr(s, name, value)
    return s


def run(*steps: StepState, status: str = "running", run_id: str = "r1") -> RunState:
    state = RunState(run_id, workflow="flows:DeployBackend", status=status, created_at=50.0)
    for s in steps:
        state.steps[s.key] = s
    return state


def node(dot: str, name: str) -> str:
    match = re.search(rf'^\s*"{re.escape(name)}" \[(.*)\]$', dot, re.M)
    assert match, f"no node {name!r} in\n{dot}"
    return match.group(1)


def edges(dot: str) -> set[tuple[str, str]]:
    return set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', dot, re.M))


def seed_run(failed: bool = True) -> RunState:
    """The seed's DeployBackend: git and aws in parallel, then iac, then sql (or notify)."""
    steps = [step("git-create", 0), step("aws-create", 1, concurrent=True)]
    if failed:
        steps += [step("iac-deploy", 2, "failed", ["git-create", "aws-create"],
                       error={"type": "RuntimeError", "message": "stack failed"}),
                  step("notify", 3, parents=["iac-deploy"])]
    else:
        steps += [step("iac-deploy", 2, parents=["git-create", "aws-create"]),
                  step("sql-migrate", 3, "running", ["iac-deploy"])]
    return run(*steps, status="failed" if failed else "running")


def test_parallel_steps_side_by_side_then_joined() -> None:
    dot = to_dot(Picture(seed_run(failed=False)))
    got = edges(dot)
    assert {("#start", "git-create"), ("#start", "aws-create"),
            ("git-create", "iac-deploy"), ("aws-create", "iac-deploy"),
            ("iac-deploy", "sql-migrate")} <= got
    assert ("git-create", "aws-create") not in got


def test_gather_after_a_step_shares_its_parents() -> None:
    # The engine hands the completed steps to the first started step only.
    state = run(step("p", 0), step("a", 1, parents=["p"]), step("b", 2, concurrent=True),
                step("c", 3, concurrent=True), step("d", 4, parents=["a", "b", "c"]))
    got = edges(to_dot(Picture(state)))
    assert {("p", "a"), ("p", "b"), ("p", "c"), ("a", "d"), ("b", "d"), ("c", "d")} <= got
    assert ("#start", "b") not in got


def test_each_state_has_its_own_colour() -> None:
    fills = {style.fill for style in STYLES.values()}
    assert len(fills) == len(STYLES)
    state = run(*(step(f"s-{name}", i, name) for i, name in enumerate(
        ["running", "waiting", "retrying", "succeeded", "failed", "cancelled", "pending"])))
    state.steps["s-replayed"] = step("s-replayed", 9)
    dot = to_dot(Picture(state, replayed=frozenset({"s-replayed"})))
    for name in ["running", "waiting", "retrying", "succeeded", "failed", "cancelled",
                 "pending", "replayed"]:
        attrs = node(dot, f"s-{name}")
        assert f'fillcolor="{STYLES[name].fill}"' in attrs, name
        assert f'class="step st-{name}"' in attrs


def test_failure_path_edge_is_marked() -> None:
    dot = to_dot(Picture(seed_run(failed=True)))
    line = next(x for x in dot.splitlines() if '"iac-deploy" -> "notify"' in x)
    assert "on failure" in line
    assert "#dc2626" in line
    assert "RuntimeError: stack failed" in node(dot, "iac-deploy")
    # A finished run ends in an end node coloured by the run's state.
    assert ("notify", "#end") in edges(dot)
    assert STYLES["failed"].border in node(dot, "#end")


def test_nested_workflow_is_a_cluster_wired_to_its_neighbours() -> None:
    child = run(step("i1", 0), step("i2", 1, "running", ["i1"]), run_id="r1/inner")
    outer = run(step("a", 0), step("inner", 1, "running", ["a"], action="flows:Inner",
                                   child_run_id="r1/inner"))
    dot = to_dot(Picture(outer, children={"inner": Picture(child)}))
    assert 'subgraph "cluster:inner"' in dot
    assert ("a", "inner/i1") in edges(dot)
    assert ("inner/i1", "inner/i2") in edges(dot)
    assert '"inner" [' not in dot  # drawn as the cluster, not as a node


def test_steps_of_the_previous_run_not_reached_are_expected() -> None:
    previous = seed_run(failed=False)
    previous.steps["sql-migrate"].status = "succeeded"
    current = run(step("git-create", 0), step("aws-create", 1, "running", concurrent=True))
    dot = to_dot(Picture(current, previous=previous))
    for ghost in ("iac-deploy", "sql-migrate"):
        attrs = node(dot, ghost)
        assert "st-expected" in attrs
        assert "dashed" in attrs
    assert ("iac-deploy", "sql-migrate") in edges(dot)
    # Once the run succeeded, nothing is "expected" any more.
    current.status = "succeeded"
    assert "st-expected" not in to_dot(Picture(current, previous=previous))


def test_big_runs_are_condensed() -> None:
    chain = [step("s-0", 0)]
    chain += [step(f"s-{i}", i, parents=[f"s-{i - 1}"]) for i in range(1, 600)]
    chain += [step("s-600", 600, "running", ["s-599"])]
    chain += [step(f"s-{i}", i, "pending", [f"s-{i - 1}"]) for i in range(601, 1000)]
    parts = dot_parts(Picture(run(*chain)), max_nodes=150)
    nodes = [x for x in parts.body if re.match(r'^\s*"[^"]+" \[', x)]
    assert len(nodes) < 10
    assert parts.groups["#group:s-0"] == [f"s-{i}" for i in range(600)]
    assert "600 steps succeeded" in parts.source()
    assert 'st-running' in node(parts.source(), "s-600")
    full = dot_parts(Picture(run(*chain)), max_nodes=None)
    assert len([x for x in full.body if "class=" in x]) == 1000


def test_fan_out_is_condensed() -> None:
    fan = [step("prep", 0)]
    fan += [step(f"f{i}", 1 + i, parents=["prep"] if i == 0 else [], concurrent=i > 0)
            for i in range(300)]
    fan += [step("collect", 301, "running", [f"f{i}" for i in range(300)])]
    dot = to_dot(Picture(run(*fan)), max_nodes=50)
    assert ("prep", "#group:f0") in edges(dot)
    assert ("#group:f0", "collect") in edges(dot)


def test_quoting_and_validation() -> None:
    assert quote('a "b"\\c\nd') == '"a \\"b\\"\\\\c\\nd"'
    state = run(step('we"ird\\name', 0))
    assert quote('we"ird\\name') in to_dot(Picture(state))
    with pytest.raises(ValueError, match="rankdir"):
        to_dot(Picture(state), rankdir="XY")
    with pytest.raises(ValueError, match="max_nodes"):
        to_dot(Picture(state), max_nodes=0)
    assert display_status(step("x", 0, "bogus")) == "pending"


def test_empty_run_says_so() -> None:
    assert "no steps yet" in to_dot(Picture(run()))


def test_core_dot_imports_no_renderer() -> None:
    code = ("import sys, orbits_nb.core.dot; bad = {'graphviz', 'duckdb', 'ipywidgets', "
            "'anywidget', 'IPython'} & set(sys.modules); print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
