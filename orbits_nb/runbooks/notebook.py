"""Reading runbook notebooks as plain JSON (no nbformat import: ``params`` stays fast)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from orbits_nb.runbooks.errors import NotebookError

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def resolve(path: str | Path) -> Path:
    """The absolute path of an existing ``.ipynb`` file, or a NotebookError."""
    notebook = Path(path).expanduser()
    if not notebook.exists():
        raise NotebookError(f"notebook {str(path)!r} does not exist (working directory: "
                            f"{Path.cwd()})", notebook=str(path))
    if notebook.is_dir():
        raise NotebookError(f"{str(path)!r} is a directory; give a .ipynb file",
                            notebook=str(path))
    if notebook.suffix != ".ipynb":
        raise NotebookError(f"{str(path)!r} is not a notebook (expected a .ipynb file)",
                            notebook=str(path))
    return notebook.resolve()


def load(path: Path) -> dict[str, Any]:
    """The notebook document as JSON data, checked to be an nbformat 4 notebook."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise NotebookError(f"cannot read notebook {path}: {err}", notebook=str(path)) from None
    except json.JSONDecodeError as err:
        raise NotebookError(f"{path} is not valid notebook JSON: {err}",
                            notebook=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError(f"{path} is not a Jupyter notebook (no 'cells' list)",
                            notebook=str(path))
    if data.get("nbformat") != 4:
        raise NotebookError(f"{path} uses nbformat {data.get('nbformat')}; save it with a "
                            "current JupyterLab (nbformat 4)", notebook=str(path))
    return data


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def tags(cell: dict[str, Any]) -> list[str]:
    found = cell.get("metadata", {}).get("tags", [])
    return [str(t) for t in found] if isinstance(found, list) else []


def parameters_cell(data: dict[str, Any]) -> int | None:
    """Index of the first code cell tagged ``parameters`` (papermill's convention)."""
    for index, cell in enumerate(data["cells"]):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in tags(cell):
            return index
    return None


def runbook_name(path: Path) -> str:
    """The runbook's name: the notebook's file name without suffix, made path-safe."""
    return _SAFE.sub("-", path.stem).strip("-") or "runbook"


def has_outputs(data: dict[str, Any]) -> list[int]:
    """Indexes of code cells that carry outputs or an execution count."""
    return [i for i, cell in enumerate(data["cells"])
            if cell.get("cell_type") == "code"
            and (cell.get("outputs") or cell.get("execution_count") is not None)]
