"""Runbooks are committed without outputs; the executed copies in output/ are the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbits_nb.runbooks import notebook as nbfile
from orbits_nb.runbooks.parameters import signature_of

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIXTURES = sorted((ROOT / "tests" / "notebooks").glob("*.ipynb"))
RUNNER_TAGS = ("injected-parameters", "orbits-nb-header", "orbits-nb-report",
               "orbits-nb-bootstrap", "papermill-error-cell-tag")


def test_there_are_runbooks() -> None:
    assert any(p.name == "quickstart.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS + FIXTURES, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    data = nbfile.load(path)
    assert nbfile.has_outputs(data) == [], f"clear the outputs of {path.name}"
    for cell in data["cells"]:
        tags = set(nbfile.tags(cell))
        assert not tags & set(RUNNER_TAGS), f"{path.name} is an executed copy"
    assert "papermill" not in data["metadata"], f"{path.name} is an executed copy"
    assert set(data["metadata"].get("orbits_nb", {})) <= {"test_parameters"}
    assert "widgets" not in data["metadata"], f"{path.name} holds widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runbooks_declare_a_kernel_and_valid_parameters(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data["metadata"]["kernelspec"]["name"] == "python3"
    signature_of(path, data)  # a malformed parameters cell raises here


def test_the_check_sees_outputs(tmp_path: Path) -> None:
    data = nbfile.load(FIXTURES[0])
    data["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                     "text": "x"}]
    assert nbfile.has_outputs(data) == [len(data["cells"]) - 1]
