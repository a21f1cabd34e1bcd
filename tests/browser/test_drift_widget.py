"""The drift widget in a real JupyterLab: badges, diffs side by side, Reconcile /
Accept buttons, and a background watch that notices drift made out of band."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .harness import (
    JupyterLab,
    cell_output,
    open_notebook,
    run_all_cells,
    screenshot,
    write_notebook,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def cells(state: Path, demo: Path) -> list[str]:
    return [
        # 0: converge three resources in a workflow.
        f"import os, pathlib\nos.environ['ORBITS_NB_STATE'] = {str(state)!r}\n"
        "import duckdb\nimport orbits_nb as ob\n"
        f"root = pathlib.Path({str(demo)!r})\n"
        "class DriftDemo(ob.Workflow):\n"
        "    async def define(self):\n"
        "        await self.do('config', ob.LocalFile(root / 'app.cfg', "
        "content='debug=false\\n'))\n"
        "        await self.do('motd', ob.LocalFile(root / 'motd', content='welcome\\n'))\n"
        "        await self.do('table', ob.LocalTable(root / 'wh.duckdb', 'events', "
        "{'id': 'int', 'body': 'text'}))\n"
        "DriftDemo().run()\nprint('deployed')",
        # 1: drift out of band: edit a file, delete one, alter the table.
        "(root / 'app.cfg').write_text('debug=true\\n')\n(root / 'motd').unlink()\n"
        "with duckdb.connect(str(root / 'wh.duckdb')) as con:\n"
        "    con.execute('ALTER TABLE events ADD COLUMN extra INTEGER')\nprint('tampered')",
        # 2: the report, displayed as the widget.
        "report = ob.drift(workflow='DriftDemo')\nreport",
        # 3: a background watch, displayed as its own widget.
        "watch = ob.watch_drift(every='1s', workflow='DriftDemo')\nwatch",
    ]


def row(widget: Locator, text: str) -> Locator:
    return widget.locator(".widget-hbox").filter(has_text=text).filter(
        has=widget.page.locator("input[type=checkbox]"))


def test_drift_widget_reconcile_accept_and_watch(jupyter_lab: JupyterLab, browser_page: object,
                                                 tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(browser_page, Page)
    page = browser_page
    demo = tmp_path / "demo"
    write_notebook(jupyter_lab.root_dir, "drift.ipynb", cells(tmp_path / "state.duckdb", demo))
    open_notebook(page, jupyter_lab, "drift.ipynb")
    run_all_cells(page)
    expect(cell_output(page, 1)).to_contain_text("tampered")

    widget = cell_output(page, 2).locator(".orbits-drift-widget")
    expect(widget).to_be_visible()
    header = widget.locator(".od-head")
    expect(header).to_contain_text("3 resource(s)")
    expect(header.locator(".od-badge.od-drifted")).to_have_text("2 drifted")
    expect(header.locator(".od-badge.od-missing")).to_have_text("1 missing")
    expect(row(widget, "app.cfg")).to_have_count(1)
    screenshot(page, "drift-widget-detected")

    # Expand the file's diff: desired and actual side by side.
    config = row(widget, "app.cfg")
    config.locator("summary").click()
    diff = config.locator("table.od-diff")
    expect(diff).to_be_visible()
    expect(diff.locator("td.od-desired")).to_have_text("debug=false")
    expect(diff.locator("td.od-actual")).to_have_text("debug=true")
    table_row = row(widget, "wh.duckdb")
    table_row.locator("summary").click()
    expect(table_row.locator("table.od-diff code")).to_have_text("columns[name=extra]")
    screenshot(page, "drift-widget-diff")

    # Nothing selected: Accept waits for a selection, Reconcile offers all, counted.
    accept = widget.get_by_role("button", name="Accept actual…")
    reconcile = widget.get_by_role("button", name=re.compile(r"Reconcile (all|selected)"))
    expect(accept).to_be_disabled()
    expect(reconcile).to_have_text("Reconcile all (3)…")
    question = widget.locator(".od-question")

    # Reconcile the file only: the question names it, and nothing happens before OK.
    config.locator("input[type=checkbox]").check()
    expect(reconcile).to_have_text("Reconcile selected (1)…")
    reconcile.click()
    expect(question).to_contain_text("Reconcile the 1 selected resource(s):")
    expect(question).to_contain_text("app.cfg")
    expect(question).not_to_contain_text("motd")
    screenshot(page, "drift-widget-confirm-reconcile")
    assert (demo / "app.cfg").read_text() == "debug=true\n"
    widget.locator(".od-confirm").get_by_role("button", name="Reconcile").click()
    status = widget.locator(".od-badge").last
    expect(status).to_contain_text("reconciled 1 resource(s) in run Reconcile-")
    expect(header.locator(".od-badge.od-drifted")).to_have_text("1 drifted")
    expect(row(widget, "app.cfg")).to_have_count(0)
    expect(question).to_be_hidden()
    assert (demo / "app.cfg").read_text() == "debug=false\n"

    # Accept the altered table as it is now: named, then confirmed.
    row(widget, "wh.duckdb").locator("input[type=checkbox]").check()
    expect(accept).to_be_enabled()
    accept.click()
    expect(question).to_contain_text("make the actual state the desired state of")
    expect(question).to_contain_text("wh.duckdb")
    screenshot(page, "drift-widget-confirm-accept")
    widget.get_by_role("button", name="Keep as is").click()
    expect(question).to_be_hidden()
    expect(header.locator(".od-badge.od-drifted")).to_have_text("1 drifted")
    accept.click()
    widget.locator(".od-confirm").get_by_role("button", name="Accept actual").click()
    expect(status).to_contain_text("accepted the actual state of 1 resource(s)")
    expect(header.locator(".od-badge.od-drifted")).to_have_count(0)
    screenshot(page, "drift-widget-after-accept")

    # Nothing selected: Reconcile converges what is left (the missing file), after
    # a question that says how many.
    expect(reconcile).to_have_text("Reconcile all (1)…")
    reconcile.click()
    expect(question).to_contain_text("Reconcile all 1 drifted or missing resource(s)")
    expect(question).to_contain_text("motd")
    widget.locator(".od-confirm").get_by_role("button", name="Reconcile").click()
    expect(header.locator(".od-badge.od-in_sync")).to_have_text("3 in sync")
    expect(reconcile).to_be_disabled()
    expect(accept).to_be_disabled()
    assert (demo / "motd").read_text() == "welcome\n"
    screenshot(page, "drift-widget-in-sync")

    # The watch widget notices drift made outside the notebook, by itself.
    watched = cell_output(page, 3).locator(".orbits-drift-widget")
    expect(watched.locator(".od-head .od-badge.od-in_sync")).to_have_text("3 in sync")
    (demo / "app.cfg").write_text(json.dumps({"tampered": True}))
    expect(watched.locator(".od-head .od-badge.od-drifted")).to_have_text("1 drifted")
    expect(row(watched, "app.cfg")).to_have_count(1)
    watched.scroll_into_view_if_needed()
    screenshot(page, "drift-watch-noticed")
