"""An executed notebook keeps a readable drift report (static HTML), headless or not."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

SOURCE = """
import os, pathlib
import orbits_nb as ob
root = pathlib.Path({root!r})
class Site(ob.Workflow):
    async def define(self):
        return await self.do("index", ob.LocalFile(root / "index.html", content="<h1>hi</h1>"))
Site().run()
(root / "index.html").write_text("<h1>defaced</h1>")
report = ob.drift()
report
"""


def execute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            env: dict[str, str]) -> dict[str, object]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(SOURCE.format(root=str(tmp_path)))]
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    for key, value in env.items():  # the kernel inherits its launcher's environment
        monkeypatch.setenv(key, value)
    client.execute()
    outputs = notebook.cells[0].outputs
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    shown = [o for o in outputs if o.output_type == "execute_result"]
    assert len(shown) == 1
    return dict(shown[0].data)


def test_executed_notebook_keeps_static_html(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state.duckdb"
    data = execute(tmp_path, monkeypatch,
                   {"ORBITS_NB_STATE": str(state), "ORBITS_NB_HEADLESS": "1"})
    assert "application/vnd.jupyter.widget-view+json" not in data
    page = str(data["text/html"])
    assert 'class="od-badge od-drifted"' in page
    assert "1 drifted" in page
    assert "&lt;h1&gt;defaced&lt;/h1&gt;" in page
    assert "<h1>defaced" not in page
    assert "1 drifted" in str(data["text/plain"])


def test_notebook_in_a_kernel_gets_the_widget_and_the_html(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = execute(tmp_path, monkeypatch, {"ORBITS_NB_STATE": str(tmp_path / "state.duckdb")})
    view = data["application/vnd.jupyter.widget-view+json"]
    assert isinstance(view, dict)
    assert view["model_id"]
    assert "od-badge od-drifted" in str(data["text/html"])
    json.dumps(data)  # the saved output is plain JSON
