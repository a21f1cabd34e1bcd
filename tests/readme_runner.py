"""Execute README blocks the way a reader would, with the interpreter under test.

    python tests/readme_runner.py SPEC.json

SPEC is ``{"cwd": folder, "blocks": [{"lang": "python" | "bash" | "sql", "code": text,
"line": n}]}``. Python blocks run as cells of one Jupyter kernel of this interpreter
(started in ``cwd``, as JupyterLab starts one beside a notebook), SQL blocks through
``ob.sql`` in that kernel, bash blocks in a shell whose PATH starts with this
interpreter's scripts. The last line printed is a JSON report:
``{"ok": bool, "prefix": kernel sys.prefix, "outputs": [text per block], "failed": {...}}``.

Only the standard library, nbformat and nbclient are used: a base install of orbits_nb
brings both (through papermill), and nothing from the development extras may be needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def cell_text(cell: Any) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
        if output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "\n".join(p for p in parts if p)


def python_source(block: dict[str, Any]) -> str:
    if block["lang"] == "sql":
        return f"import orbits_nb as ob\n\nprint(ob.sql({block['code']!r}).fetchall())"
    return str(block["code"])


def run_bash(code: str, cwd: str) -> tuple[bool, str]:
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True)
    return done.returncode == 0, done.stdout + done.stderr


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    cwd = spec["cwd"]
    notebook = nbformat.v4.new_notebook()
    client = NotebookClient(notebook, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": cwd}})
    report: dict[str, Any] = {"ok": True, "outputs": [], "prefix": None}
    with client.setup_kernel():
        probe = nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)")
        notebook.cells.append(probe)
        client.execute_cell(probe, 0)
        report["prefix"] = cell_text(probe).strip()
        for block in spec["blocks"]:
            if block["lang"] == "bash":
                ok, text = run_bash(block["code"], cwd)
            else:
                cell = nbformat.v4.new_code_cell(python_source(block))
                notebook.cells.append(cell)
                try:
                    client.execute_cell(cell, len(notebook.cells) - 1)
                    ok = True
                except CellExecutionError:
                    ok = False
                text = cell_text(cell)
            report["outputs"].append(text)
            if not ok:
                report.update(ok=False, failed={"line": block["line"], "output": text})
                break
    return report


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    report = run(spec)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
