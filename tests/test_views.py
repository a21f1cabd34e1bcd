"""Static views of runs: run.graph(), renderers and fallbacks, the display bundle."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import graphviz
import pytest
from test_views_flows import DeployBackend, Many
from test_widgets import comms, frontend_sends

__all__ = ["comms"]  # the fixture, shared with test_widgets

import orbits_nb as ob
from orbits_nb.views.display import WIDGET_MIME, has_widget_kernel, mimebundle

TESTS = Path(__file__).parent


def failed_run(engine: ob.Engine, **args: object) -> ob.Run:
    run = engine.start(DeployBackend(client="acme", fail=True, **args))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    return run


def svg_of_html(text: str) -> str:
    match = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', text)
    assert match, "no inline SVG image in the HTML"
    return base64.b64decode(match.group(1)).decode()


@pytest.mark.parametrize("renderer", ["system", "bundled"])
def test_graph_renders_with_each_backend(engine: ob.Engine, renderer: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if renderer == "system" and not Path("/usr/bin/dot").exists():
        pytest.skip("no system Graphviz here")
    monkeypatch.setenv("ORBITS_NB_RENDERER", renderer)
    run = failed_run(engine, nested=True)
    graph = run.graph()
    assert isinstance(graph, graphviz.Digraph)
    bundle = graph._repr_mimebundle_()
    svg = bundle["image/svg+xml"]
    assert svg.startswith("<svg")
    for name in ("git-create", "aws-create", "nested/i1", "iac-deploy", "notify"):
        assert f"<title>{name.replace('-', '&#45;')}</title>" in svg, name
    assert "st&#45;failed" in svg or "st-failed" in svg
    assert "cluster:nested" in svg.replace("&#45;", "-")
    assert "DeployBackend" in graph.source  # the title


def test_no_renderer_shows_dot_source_with_a_hint(engine: ob.Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORBITS_NB_RENDERER", "none")
    run = failed_run(engine)
    bundle = run.graph()._repr_mimebundle_()
    assert "image/svg+xml" not in bundle
    assert "pip install graphviz-pure" in bundle["text/plain"]
    assert '"iac-deploy"' in bundle["text/plain"]
    html = mimebundle(run)["text/html"]
    assert "showing the DOT source" in html
    assert "&quot;iac-deploy&quot;" in html


def test_bundle_has_text_html_and_no_widget_outside_a_kernel(engine: ob.Engine) -> None:
    run = failed_run(engine)
    assert not has_widget_kernel()
    bundle = run._repr_mimebundle_()
    assert WIDGET_MIME not in bundle
    text = bundle["text/plain"]
    assert text.startswith(f"Run {run.run_id} [failed]")
    assert "iac-deploy  failed" in text
    html = bundle["text/html"]
    svg = svg_of_html(html)
    assert "<title>iac&#45;deploy</title>" in svg
    rows = re.findall(r'<tr class="orbits-nb-step" data-step="([^"]+)"', html)
    assert rows == ["git-create", "aws-create", "iac-deploy", "notify"]
    assert "RuntimeError: stack acme failed" in html
    assert "Traceback (most recent call last)" in html  # the run's error, collapsed
    assert run._repr_mimebundle_(include=["text/plain"]).keys() == {"text/plain"}
    assert "text/html" not in run._repr_mimebundle_(exclude=["text/html"])


def test_secrets_never_reach_the_views(engine: ob.Engine) -> None:
    run = failed_run(engine)
    html = run._repr_mimebundle_()["text/html"]
    assert "s3cr3t-token" not in html
    assert "s3cr3t-token" not in run.graph().source


def test_expected_steps_come_from_the_previous_run(engine: ob.Engine, tmp_path: Path) -> None:
    engine.start(DeployBackend(client="old")).wait(30)
    gate = tmp_path / "open"
    run = engine.start(DeployBackend(client="new", gate=str(gate)))
    try:
        source = ""
        for _ in range(100):
            source = run.graph().source
            if "st-waiting" in source:
                break
            time.sleep(0.05)
        assert re.search(r'"iac-deploy" \[.*st-expected', source)
        assert re.search(r'"sql-migrate" \[.*st-expected', source)
        assert re.search(r'"wait" \[.*st-waiting', source)
    finally:
        gate.touch()
        run.wait(30)
    assert "st-expected" not in run.graph().source


def test_replayed_steps_are_drawn_as_replayed(engine: ob.Engine, tmp_path: Path) -> None:
    fix = tmp_path / "fixed"
    run = engine.start(DeployBackend(client="acme", flaky=str(fix)))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    fix.touch()
    again = run.retry()
    again.wait(30)
    source = again.graph().source
    assert re.search(r'"git-create" \[.*st-replayed', source)
    assert re.search(r'"iac-deploy" \[.*st-succeeded', source)


def test_a_big_run_is_condensed_in_the_diagram(engine: ob.Engine) -> None:
    run = engine.start(Many(n=300))
    assert run.wait(60) == 300
    source = run.graph(max_nodes=100).source
    assert "300 steps succeeded" in source
    assert source.count("class=") < 10
    assert run.graph(max_nodes=None).source.count('class="step st-succeeded"') == 300


@pytest.mark.slow
@pytest.mark.parametrize("headless", [False, True], ids=["papermill", "orbits-nb-run"])
def test_papermill_output_keeps_the_svg_and_the_table(tmp_path: Path, headless: bool) -> None:
    import nbformat
    import papermill

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("import orbits_nb as ob\n"
                                  "from test_views_flows import DeployBackend"),
        nbformat.v4.new_code_cell("run = DeployBackend(client='paper', nested=True).start()\n"
                                  "run"),
        nbformat.v4.new_code_cell("run.wait(60)\nrun.graph()"),
    ]
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)
    env = {"ORBITS_NB_STATE": str(tmp_path / "state.duckdb"),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    if headless:  # as `orbits-nb run` executes a runbook
        env["ORBITS_NB_HEADLESS"] = "1"
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(str(source), str(output), kernel_name="python3",
                                   cwd=str(tmp_path), progress_bar=False)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    cells = json.loads(output.read_text())["cells"]
    shown = cells[1]["outputs"][0]
    html = "".join(shown["data"]["text/html"])
    # The display was refreshed when the run ended: the report shows the final state.
    assert 'data-run-id="DeployBackend-' in html
    assert "succeeded</span> <b>DeployBackend</b>" in html
    svg = svg_of_html(html)
    assert "<title>sql&#45;migrate</title>" in svg
    assert svg.count("st&#45;succeeded") >= 5 or svg.count("st-succeeded") >= 5
    rows = re.findall(r'data-step="([^"]+)"', html)
    assert rows[:3] == ["git-create", "aws-create", "nested"]
    assert "text/plain" in shown["data"]
    text = "".join(shown["data"]["text/plain"])
    assert text.startswith("Run DeployBackend-")
    assert "[succeeded]" in text
    # A widget in a headless execution's output would only say "model not found".
    assert (WIDGET_MIME in shown["data"]) is not headless
    graph = cells[2]["outputs"][-1]["data"]
    assert "".join(graph["image/svg+xml"]).startswith("<svg")


def test_run_display_in_a_terminal_ipython_is_text(engine: ob.Engine) -> None:
    run = failed_run(engine)
    code = (
        "import sys, orbits_nb as ob\n"
        f"e = ob.Engine({str(engine.store.path)!r})\n"
        f"r = e.get_run({run.run_id!r})\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "data, _ = shell.display_formatter.format(r)\n"
        "print(sorted(data))\n")
    engine.close()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True,
                         env={**os.environ, "PYTHONPATH": str(TESTS)}).stdout
    # IPython hands the object to Run._ipython_display_, which prints the text form.
    assert f"Run {run.run_id} [failed]" in out
    assert "iac-deploy  failed" in out
    assert "widget" not in out


def test_the_static_view_of_a_reset_run_says_what_runs_next(engine: ob.Engine) -> None:
    run = engine.start(DeployBackend(client="again"))
    run.wait(30)
    run.reset("iac-deploy")
    html = mimebundle(run, widget=False)["text/html"]
    assert ">reset</span> <b>DeployBackend</b>" in html
    assert "2/4 steps done · 2 pending · will re-run from iac-deploy" in html
    pending = re.findall(r'data-step="([^"]+)"[^>]*>(?:(?!</tr>).)*>pending</span>', html)
    assert pending == ["iac-deploy", "sql-migrate"]
    assert "DeployBackend · " + run.run_id + " · reset" in run.graph().source
    svg = svg_of_html(html)
    assert "st&#45;pending" in svg or "st-pending" in svg


@pytest.mark.slow
def test_an_output_is_refreshed_by_the_cell_that_waited_even_as_the_last_one(
        tmp_path: Path) -> None:
    """The run ends while the last cell waits: its output is refreshed within that cell,
    not later from a thread (a headless client stops reading after the last cell)."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("from test_views_flows import Nap\n"
                                  "run = Nap(seconds=1.5).start()\nrun"),
        nbformat.v4.new_code_cell("result = await run"),
    ]
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)
    env = {"ORBITS_NB_STATE": str(tmp_path / "state.duckdb"), "ORBITS_NB_HEADLESS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    code = ("import papermill, sys\n"
            "papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name='python3', "
            "progress_bar=False)\n")
    subprocess.run([sys.executable, "-c", code, str(source), str(output)], cwd=tmp_path,
                   env={**os.environ, **env}, check=True, timeout=300,
                   capture_output=True)
    shown = json.loads(output.read_text())["cells"][0]["outputs"][0]["data"]
    html = "".join(shown["text/html"])
    assert "succeeded</span> <b>Nap</b>" in html
    assert "1/1 steps done" in html
    assert "[succeeded]" in "".join(shown["text/plain"])


class FakeHandle:
    """A display handle that keeps the bundles it was updated with."""

    def __init__(self) -> None:
        self.updates: list[dict[str, object]] = []

    def update(self, data: dict[str, object], raw: bool = False) -> None:
        self.updates.append(data)


class FakeShell:
    """The two IPython events the outputs use, fired by the test as a kernel would."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[object]] = {}

    @property
    def events(self) -> FakeShell:
        return self

    def register(self, name: str, callback: object) -> None:
        self.hooks.setdefault(name, []).append(callback)

    def run_cell(self) -> None:
        for name in ("pre_run_cell", "post_run_cell"):
            for callback in self.hooks.get(name, []):
                callback()  # type: ignore[operator]


def status_of(data: dict[str, object]) -> str:
    found = re.findall(r">(\w+)</span> <b>", str(data["text/html"]))
    return found[0] if found else ""


def test_outputs_follow_each_settled_state_and_a_cell_end_makes_sure(
        engine: ob.Engine, tmp_path: Path, comms: list[object]) -> None:
    from orbits_nb.views.display import Output
    from orbits_nb.views.monitor import SETTLE_CALLBACKS, Monitor

    gate = tmp_path / "gate"
    run = engine.start(DeployBackend(client="out", gate=str(gate)))
    monitor = Monitor.for_run(run, interval=0.05)
    shell, handles = FakeShell(), []
    for _ in range(SETTLE_CALLBACKS + 4):  # the cell displayed again and again
        output = Output(run, monitor)
        output.handle = FakeHandle()
        output.watch(shell)
        handles.append(output.handle)
    gate.touch()
    run.wait(30)
    shell.run_cell()  # the cell that waited ends: every kept output is refreshed
    kept, dropped = handles[4:], handles[:4]
    for handle in kept:
        assert handle.updates, "a kept output was not refreshed"
        assert status_of(handle.updates[-1]) == "succeeded"
        assert handle.updates[-1][WIDGET_MIME]["model_id"] == monitor.model_id
    assert all(not h.updates for h in dropped)
    counts = [len(h.updates) for h in kept]
    shell.run_cell()  # nothing new: nothing sent again
    assert [len(h.updates) for h in kept] == counts

    frontend_sends(monitor, {"type": "action", "action": "reset", "step": "sql-migrate"})
    assert monitor.header["status"] == "reset"
    assert all(status_of(h.updates[-1]) == "reset" for h in kept)
