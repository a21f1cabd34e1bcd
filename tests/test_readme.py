"""The README's blocks run as written, section by section, the way a reader runs them.

Every ```python, ```bash and ```sql block is executed unless its first line says
``# Sketch:`` (visibly not runnable) or an HTML comment right above it says
``<!-- not executed: why -->``. The blocks of one ``## `` section share a Jupyter kernel
and a fresh project folder holding a copy of ``notebooks/``; nothing points the blocks
at a state file, so they use the default one, as a reader's would.

Here they run with the test interpreter; ``tests/test_install.py`` runs the same
sections in a virtualenv holding only the base install of a built wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNER = Path(__file__).resolve().parent / "readme_runner.py"
EXECUTED = {"python", "bash", "sql"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
NOT_EXECUTED = re.compile(r"<!-- not executed: (.+?) -->\n$")
# Variables of the test environment a reader does not have.
FOREIGN_ENV = ("ORBITS_NB_STATE", "ORBITS_NB_OUTPUT", "ORBITS_NB_NOTEBOOK",
               "ORBITS_NB_NOTEBOOK_RUN", "ORBITS_NB_PARAMETERS", "ORBITS_NB_HEADLESS")
# What some sections must show, beyond running without an error.
EXPECTED = {
    "A tour of the API": ["{'repo': 'file:///srv/git/acme.git', 'account': '123456789012'}",
                          "succeeded", "creating acme", "git-create", "aws-create"],
    "Watching runs in JupyterLab": ["Ship 2.0?"],
    "Resources and drift": ["status='drifted'", "content", "{'image': 'v0'}",
                            "~ Service:api (update)"],
    "Runbooks: headless runs, resume, schedules": ["nightly-globex", "succeeded"],
}


@dataclass
class Block:
    lang: str
    code: str
    line: int
    section: str
    skipped: str | None  # why it is not executed, from an HTML comment above it

    @property
    def sketch(self) -> bool:
        first = self.code.lstrip().splitlines()[0] if self.code.strip() else ""
        return first.startswith(("# Sketch:", "-- Sketch:"))

    @property
    def executed(self) -> bool:
        return self.lang in EXECUTED and not self.sketch and self.skipped is None


def blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()]
        headings = re.findall(r"^## (.+)$", before, flags=re.M)
        skipped = NOT_EXECUTED.search(before)
        found.append(Block(match.group(1), match.group(2), before.count("\n") + 1,
                           headings[-1] if headings else "", skipped and skipped.group(1)))
    return found


def sections() -> dict[str, list[Block]]:
    grouped: dict[str, list[Block]] = {}
    for block in blocks():
        if block.executed:
            grouped.setdefault(block.section, []).append(block)
    return grouped


def reader_env(*, keep_pythonpath: bool, scratch: Path) -> dict[str, str]:
    """The environment of a reader: no test state, no user kernelspecs or profiles."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    if not keep_pythonpath:
        env.pop("PYTHONPATH", None)
    # The kernel must be this interpreter's, not a kernelspec in the user's data dir.
    env["JUPYTER_DATA_DIR"] = str(scratch / "jupyter-data")
    env["IPYTHONDIR"] = str(scratch / "ipython")
    return env


def project_folder(base: Path) -> Path:
    """A fresh project as a reader has one: a project marker and the notebooks."""
    base.mkdir(parents=True)
    (base / ".orbits_nb").mkdir()
    shutil.copytree(ROOT / "notebooks", base / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "repos", "output",
                                                  "kernel-ipc-*"))
    return base


def run_blocks(python: str | Path, blocks: list[Block], folder: Path,
               env: dict[str, str]) -> dict[str, object]:
    """Run ``blocks`` with ``python`` in ``folder``; return the runner's report."""
    spec = folder.parent / f"{folder.name}.json"
    spec.write_text(json.dumps({"cwd": str(folder), "blocks": [
        {"lang": b.lang, "code": b.code, "line": b.line} for b in blocks]}))
    done = subprocess.run([str(python), str(RUNNER), str(spec)], capture_output=True,
                          text=True, cwd=folder, env=env)
    lines = done.stdout.strip().splitlines()
    assert lines, f"the runner printed nothing:\n{done.stderr}"
    report: dict[str, object] = json.loads(lines[-1])
    assert report["ok"], (f"README block at line {report['failed']['line']} "  # type: ignore[index]
                          f"failed:\n{report['failed']['output']}")  # type: ignore[index]
    assert done.returncode == 0, done.stderr
    return report


def check_section(python: str | Path, title: str, tmp_path: Path, *,
                  keep_pythonpath: bool) -> dict[str, object]:
    folder = project_folder(tmp_path / "project")
    report = run_blocks(python, sections()[title], folder,
                        reader_env(keep_pythonpath=keep_pythonpath, scratch=tmp_path))
    shown = "\n".join(report["outputs"])  # type: ignore[arg-type]
    missing = [text for text in EXPECTED.get(title, []) if text not in shown]
    assert not missing, f"{title}: {missing} not in\n{shown}"
    return report


def slug(title: str) -> str:
    return re.sub(r"\W+", "-", title).strip("-").lower()


SECTIONS = sorted(sections())


@pytest.mark.parametrize("title", SECTIONS, ids=[slug(t) for t in SECTIONS])
def test_readme_section_runs_as_written(title: str, tmp_path: Path) -> None:
    report = check_section(sys.executable, title, tmp_path, keep_pythonpath=True)
    assert Path(str(report["prefix"])).resolve() == Path(sys.prefix).resolve()


def test_every_block_is_executed_or_visibly_a_sketch() -> None:
    found = blocks()
    langs = {b.lang for b in found}
    assert langs <= EXECUTED | {"text"}, f"unknown fence languages {langs}"
    for block in found:
        if block.skipped is not None:
            assert len(block.skipped) > 10, f"line {block.line}: say why it is not run"
    executed = [b for b in found if b.executed]
    sketches = [b for b in found if b.sketch]
    assert len(executed) >= 10 and len(sketches) <= 4  # AWS (2), Dask, a PostgreSQL server
    assert set(EXPECTED) <= set(sections())
    # The CLI reference is the only text block: a list of commands, not a program.
    assert [b.section for b in found if b.lang == "text"] == ["Command line"]


def test_the_parser_sees_markers() -> None:
    text = ("## One\n\n```python\nx = 1\n```\n\n<!-- not executed: shown for its shape -->\n"
            "```bash\nrm -rf /\n```\n\n## Two\n\n```python\n# Sketch: needs AWS\nboom()\n```\n")
    one, two, three = blocks(text)
    assert (one.executed, one.section, one.line) == (True, "One", 3)
    assert (two.executed, two.skipped) == (False, "shown for its shape")
    assert (three.executed, three.sketch, three.section) == (False, True, "Two")


def test_quick_start_commands_are_what_ci_and_dev_py_run() -> None:
    [quick] = [b for b in blocks() if b.section == "Quick start"]
    assert quick.skipped and "python3 dev.py demo" in quick.code
    assert "python3 dev.py test" in quick.code
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()
    dev = (ROOT / "dev.py").read_text()
    assert '"demo": demo' in dev and '"test": test' in dev


def test_readme_documents_every_user_table(tmp_path: Path) -> None:
    import orbits_nb as ob
    from orbits_nb.store.schema import USER_TABLES

    text = README.read_text()
    tables = text[text.index("### Tables"):]
    missing = [name for name in USER_TABLES if f"| `{name}`" not in tables]
    assert missing == []
    store = ob.DuckDBStore(tmp_path / "s.duckdb")
    present = {name for (name,) in store.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")}
    store.close()
    assert set(USER_TABLES) <= present
