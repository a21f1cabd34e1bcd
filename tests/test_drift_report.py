"""drift(): filters, recorded history, reconcile runs, accept-actual, uninstall, watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from test_resources import Backend, Frontend, Probe, Uses, calls

import orbits_nb as ob
from orbits_nb.core.drift import FieldDiff
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.engine.table import records
from orbits_nb.resources import drifted_steps, leases
from orbits_nb.resources.errors import ResourceInUse, ResourceNotFound
from orbits_nb.resources.watch import parse_every


def tamper(root: Path, name: str, value: Any) -> None:
    (root / f"{name}.json").write_text(json.dumps({"value": value}))


def test_filters_select_by_type_identity_workflow_and_key(engine: ob.Engine, root: Path,
                                                          tmp_path: Path) -> None:
    engine.start(Backend(root=str(root), name="b1", value=1)).wait()
    engine.start(Frontend(root=str(root), name="f1", value=1)).wait()

    class Files(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("f", ob.LocalFile(tmp_path / "x.txt", content="x"))

    engine.start(Files()).wait()
    keys = lambda report: sorted(c.key for c in report)  # noqa: E731
    assert len(ob.drift(engine=engine)) == 3
    assert keys(ob.drift(type=Probe, engine=engine)) == ["Probe:b1", "Probe:f1"]
    assert keys(ob.drift(type=[ob.LocalFile], engine=engine)) == [
        f"LocalFile:{tmp_path / 'x.txt'}"]
    assert keys(ob.drift(type="Probe", identity="f*", engine=engine)) == ["Probe:f1"]
    assert keys(ob.drift(workflow="Backend", engine=engine)) == ["Probe:b1"]
    assert keys(ob.drift(key="Probe:*1", engine=engine)) == ["Probe:b1", "Probe:f1"]
    assert len(ob.drift(workflow="Nobody", engine=engine)) == 0
    with pytest.raises(InvalidArgument, match="type= takes Resource classes or kind names"):
        ob.drift(type=int, engine=engine)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="concurrency must be a positive int, got 0"):
        ob.drift(concurrency=0, engine=engine)


def test_history_shows_when_drift_started(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="h", value=1)).wait()
    assert ob.drift(engine=engine).ok
    tamper(root, "h", 2)
    first = ob.drift(engine=engine).checks[0]
    second = ob.drift(engine=engine).checks[0]
    assert first.status == second.status == "drifted"
    assert second.since == pytest.approx(first.checked_at)  # the streak's first check
    history = ob.drift_history("Probe:h", engine=engine).fetchall()
    assert [(row[3], row[4]) for row in history] == [
        ("drift", "drifted"), ("drift", "drifted"), ("drift", "in_sync"),
        ("converge", "in_sync")]
    assert json.loads(history[0][5]) == [{"path": "value", "change": "changed",
                                          "desired": 1, "actual": 2}]
    status = engine.store.fetch("SELECT drift_status, epoch(drift_since) FROM "
                                "resource_status")[0]
    assert status[0] == "drifted"
    assert status[1] == pytest.approx(first.checked_at, abs=1e-3)
    assert ob.drift(record=False, engine=engine).checks[0].status == "drifted"
    assert len(ob.drift_history("Probe:h", engine=engine).fetchall()) == 4


def test_reconcile_is_a_recorded_run_with_visible_steps(engine: ob.Engine,
                                                        root: Path) -> None:
    for name in ("r1", "r2", "r3"):
        engine.start(Uses(root=str(root), name=name, value=1)).wait()
    tamper(root, "r1", 5)
    (root / "r2.json").unlink()
    report = ob.drift(engine=engine)
    assert [c.status for c in report] == ["drifted", "missing", "in_sync"]
    run = report.reconcile()
    assert run is not None
    assert run.status == "succeeded"
    assert sorted(run.result) == ["Probe:r1", "Probe:r2"]
    assert [s["step"] for s in records(run.steps())] == ["Probe:r1", "Probe:r2"]
    assert [s["action"] for s in records(run.steps())] == ["Converge", "Converge"]
    assert report.ok
    assert sorted(calls(root)[-2:]) == ["create r2", "update value"]
    assert ob.history(workflow="Reconcile", engine=engine).fetchall()[0][2] == "succeeded"
    assert report.reconcile() is None  # nothing left to do


class Flaky(Probe):
    """update() fails while ``<root>/broken`` exists (at most ``fails`` times)."""

    def update(self, diff: list[FieldDiff]) -> None:
        marker = Path(self.args["root"]) / "broken"
        if marker.exists():
            count = int(marker.read_text() or 0)
            if count < int(self.args.get("fails", 99)):
                marker.write_text(str(count + 1))
                raise OSError(f"disk busy (failure {count + 1})")
        super().update(diff)


class UsesFlaky(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("probe", Flaky(root=self.args["root"], name="fl", value=1,
                                            fails=self.args["fails"]))


def test_reconcile_steps_are_retried_and_failures_surface(engine: ob.Engine,
                                                          root: Path) -> None:
    engine.start(UsesFlaky(root=str(root), fails=1)).wait()
    tamper(root, "fl", 9)
    (root / "broken").write_text("0")
    report = ob.drift(engine=engine)
    run = report.reconcile()
    assert run is not None
    assert run.status == "succeeded"
    assert records(run.steps())[0]["attempts"] == 2  # retried once by the step machinery

    tamper(root, "fl", 9)
    (root / "broken").write_text("-100")  # fails on every attempt now
    report = ob.drift(engine=engine)
    with pytest.raises(ob.ResourceError, match=r"1 of 1 resource\(s\) failed.*disk busy"):
        report.reconcile()
    failed = engine.get_run(ob.history(workflow="Reconcile", engine=engine).fetchall()[0][0])
    assert failed.status == "failed"
    assert records(failed.steps())[0]["attempts"] == 3
    assert report.drifted  # still drifted, and shown so
    (root / "broken").unlink()
    assert failed.retry().wait(60)["Probe:fl"]["id"] == "probe-fl"
    assert ob.drift(engine=engine).ok


def test_accept_actual_is_recorded_and_a_step_converges_back(engine: ob.Engine,
                                                             root: Path) -> None:
    engine.start(Uses(root=str(root), name="acc", value=1)).wait()
    tamper(root, "acc", 42)
    assert ob.drift(engine=engine).accept() == ["Probe:acc"]
    assert ob.drift(engine=engine).ok
    row = engine.store.fetch("SELECT desired, accepted_by FROM resources")[0]
    assert json.loads(row[0]) == {"value": 42}
    assert "@" in row[1]
    accepted = engine.store.fetch("SELECT status, diffs, checked_by FROM drift_checks "
                                  "WHERE source = 'accept'")[0]
    assert accepted[0] == "in_sync"
    assert json.loads(accepted[1])[0]["actual"] == 42
    # A fresh run of the workflow applies the code's desired state again, and says so.
    run = engine.start(Uses(root=str(root), name="acc", value=1), fresh=True)
    run.wait()
    assert json.loads((root / "acc.json").read_text()) == {"value": 1}
    assert "replacing the observed state" in run.logs("probe")


def test_accepting_a_missing_resource_forgets_it(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="gone", value=1)).wait()
    (root / "gone.json").unlink()
    report = ob.drift(engine=engine)
    assert report.accept("missing") == ["Probe:gone"]
    assert len(ob.drift(engine=engine)) == 0
    with pytest.raises(ResourceNotFound, match="'nope' matches no resource"):
        report.accept("nope")


def test_uninstall_protects_resources_other_workflows_use(engine: ob.Engine,
                                                          root: Path) -> None:
    engine.start(Backend(root=str(root), name="acct", value=1)).wait()
    engine.start(Frontend(root=str(root), name="acct", value=1)).wait()
    with pytest.raises(ob.ResourceError, match="still used by Backend .*Frontend"):
        ob.uninstall("Probe:acct", engine=engine)
    with pytest.raises(ob.ResourceError, match=r"still used by Frontend \(Frontend-"):
        ob.uninstall("acct", release=["Backend"], engine=engine)
    assert (root / "acct.json").exists()
    run = ob.uninstall("acct", release=["Backend", "Frontend"], engine=engine)
    assert run.result == {"Probe:acct": {"key": "Probe:acct", "deleted": True,
                                         "existed": True}}
    assert not (root / "acct.json").exists()
    assert calls(root)[-1] == "delete acct"
    assert len(ob.drift(engine=engine)) == 0
    assert ob.list_resources(include_deleted=True, engine=engine).fetchall()[0][3] == \
        "deleted"
    with pytest.raises(ResourceNotFound, match="no recorded resource"):
        ob.uninstall("acct", engine=engine)


def test_uninstall_from_a_step_keeps_what_others_use(engine: ob.Engine, root: Path) -> None:
    class Life(ob.Workflow):
        """Uses the probe, then uninstalls it within the same run."""

        async def define(self) -> Any:
            probe = Probe(root=self.args["root"], name=self.args["name"], value=1)
            await self.do("use", probe)
            return await self.do("drop", probe.uninstall())

    alone = engine.start(Life(root=str(root), name="solo")).wait()
    assert alone == {"key": "Probe:solo", "deleted": True, "existed": True}
    assert not (root / "solo.json").exists()

    engine.start(Frontend(root=str(root), name="acct", value=1)).wait()
    kept = engine.start(Life(root=str(root), name="acct")).wait()
    assert kept["deleted"] is False
    assert kept["still_used_by"][0].startswith("Frontend (")
    assert (root / "acct.json").exists()
    active = engine.store.fetch("SELECT DISTINCT workflow FROM resource_users WHERE "
                                "role = 'user' AND released_at IS NULL")
    assert [a[0].rsplit(":", 1)[-1] for a in active] == ["Frontend"]

    forced = ob.uninstall("acct", force=True, engine=engine)
    assert forced.result["Probe:acct"]["deleted"] is True
    assert not (root / "acct.json").exists()


def test_drifted_steps_marks_steps_whose_resource_drifted(engine: ob.Engine,
                                                          root: Path) -> None:
    run = engine.start(Uses(root=str(root), name="d", value=1, step="config"))
    run.wait()
    assert drifted_steps(engine.store, run.run_id) == set()
    tamper(root, "d", 2)
    report = ob.drift(engine=engine)
    assert drifted_steps(engine.store, run.run_id) == {"config"}
    assert drifted_steps(engine, run.run_id) == {"config"}
    report.reconcile()
    assert drifted_steps(engine.store, run.run_id) == set()


def test_observe_failures_and_unimportable_classes_are_errors(engine: ob.Engine,
                                                              root: Path) -> None:
    engine.start(Uses(root=str(root), name="bad", value=1)).wait()
    (root / "bad.json").write_text("{not json")
    check = ob.drift(engine=engine).checks[0]
    assert check.status == "error"
    assert check.error.startswith("JSONDecodeError:")
    engine.store.fetch("UPDATE resources SET type = 'gone_module:Thing'")
    check = ob.drift(engine=engine).checks[0]
    assert check.status == "error"
    assert "cannot import gone_module:Thing" in check.error


def test_a_resource_under_a_command_is_not_observed(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="busy", value=1)).wait()
    lease = leases.ResourceLease("Probe:busy", "update", run_id="other-run", step="s")
    assert leases.try_acquire(engine.store, lease) is None
    check = ob.drift(engine=engine).checks[0]
    assert check.status == "error"
    assert "a command holds its lease (update by" in check.error
    assert "'other-run'" in check.error


def test_report_display_forms(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="shown", value="<b>1</b>")).wait()
    tamper(root, "shown", "<script>x</script>")
    report = ob.drift(engine=engine)
    text = repr(report)
    assert "1 drifted" in text
    assert 'value: "<b>1</b>" -> "<script>x</script>"' in text
    page = report._repr_html_()
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script>x" not in page
    assert 'class="od-badge od-drifted"' in page
    assert "<details>" in page
    assert report.table().column("status") == ["drifted"]
    assert report.to_pandas().shape == (1, 6)
    assert report["shown"].key == "Probe:shown"
    assert report[0].identity == "shown"


# -- watch_drift ------------------------------------------------------------------------
def test_parse_every() -> None:
    assert parse_every("10m") == 600
    assert parse_every("1h30m") == 5400
    assert parse_every("500ms") == 0.5
    assert parse_every(2) == 2.0
    for bad in ("ten minutes", "10", "", "5x", 0, -1, True):
        with pytest.raises(InvalidArgument, match="every="):
            parse_every(bad)  # type: ignore[arg-type]


def test_watch_drift_checks_periodically_and_alerts(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="w", value=1)).wait()
    alerts: list[ob.DriftReport] = []
    alerted = threading.Event()

    def on_drift(report: ob.DriftReport) -> None:
        alerts.append(report)
        alerted.set()

    watch = ob.watch_drift(every="0.2s", on_drift=on_drift, engine=engine)
    try:
        assert watch.wait_for_check(1, timeout=30).ok
        widget = watch.widget()
        tamper(root, "w", 3)
        assert alerted.wait(30)
        assert alerts[0].drifted[0].key == "Probe:w"
        count = watch.checks
        last = watch.wait_for_check(count + 1, timeout=30)
        assert "1 drifted" in widget.header.value
        assert last.drifted
        # Same filters again: the first watch stops, the widget carries over.
        again = ob.watch_drift(every="1h", on_drift=on_drift, engine=engine)
        assert again.widget() is widget
        watch.wait_for_check(count + 1, timeout=5)
        assert not watch.running or watch._future is not None and watch._future.cancelled()
        again.stop()
    finally:
        watch.stop()
    with pytest.raises(InvalidArgument, match="on_drift must be callable"):
        ob.watch_drift(every="1m", on_drift="alert", engine=engine)  # type: ignore[arg-type]


# -- CLI --------------------------------------------------------------------------------
def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "--state", str(state),
                           *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "ORBITS_NB_PROGRESS": "0"})


def test_cli_drift_reconcile_history(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    path = tmp_path / "motd"
    engine = ob.Engine(state)

    class Motd(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("motd", ob.LocalFile(path, content="hello\n"))

    engine.start(Motd()).wait()
    engine.close()
    assert cli(state, "drift").returncode == 0
    path.write_text("hacked\n")
    checked = cli(state, "drift")
    assert checked.returncode == 1
    assert 'content: "hello\\n" -> "hacked\\n"' in checked.stdout
    lines = [json.loads(x) for x in cli(state, "drift", "--json").stdout.splitlines()]
    assert lines[0]["status"] == "drifted"
    assert lines[0]["diffs"][0]["path"] == "content"
    listed = cli(state, "resources")
    assert f"LocalFile:{path}" in listed.stdout
    assert "drifted" in listed.stdout
    fixed = cli(state, "reconcile")
    assert fixed.returncode == 0, fixed.stderr
    assert "reconciled 1 resource(s) in run Reconcile-" in fixed.stdout
    assert path.read_text() == "hello\n"
    history = cli(state, "drift-history", f"LocalFile:{path}")
    assert "reconcile" in history.stdout
    assert "drifted" in history.stdout
    refused = cli(state, "uninstall", str(path))
    assert refused.returncode == 2
    assert "still used by Motd" in refused.stderr
    done = cli(state, "uninstall", str(path), "--release", "Motd")
    assert done.returncode == 0
    assert "deleted" in done.stdout
    assert not path.exists()


def test_report_commands_reject_bad_selection(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="s", value=1)).wait()
    report = ob.drift(engine=engine)
    with pytest.raises(InvalidArgument, match="no default"):
        report.uninstall(None)
    with pytest.raises(InvalidArgument, match="got int"):
        report.select([3])  # type: ignore[list-item]
    with pytest.raises(ResourceInUse):
        raise ResourceInUse("x", key="k")


def test_blocking_calls_refuse_to_run_on_the_engine_loop(engine: ob.Engine,
                                                         root: Path) -> None:
    class Inside(ob.Action):
        async def main(self) -> Any:
            return len(ob.drift(engine=self.engine))

    class Checks(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("check", Inside())

    with pytest.raises(ob.StepFailed, match="cannot run on the engine's own loop"):
        engine.start(Checks()).wait(30)


def test_a_new_class_version_shows_as_drift_and_reconciles(
        engine: ob.Engine, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.start(Uses(root=str(root), name="ver", value=1)).wait()
    monkeypatch.setattr(Probe, "version", "2026-11")
    check = ob.drift(engine=engine).checks[0]
    assert check.status == "drifted"
    assert [(d.path, d.desired, d.actual) for d in check.diffs] == [
        ("$version", '"2026-11"', None)]
    ob.drift(engine=engine).reconcile()
    assert calls(root)[-1] == "update $version"
    assert ob.drift(engine=engine).ok
