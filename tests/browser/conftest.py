"""Fixtures for tests that drive a real JupyterLab in headless Chromium.

`jupyter_lab` is one server for the whole session; `browser_page` is a fresh Chromium
with an empty profile per test. Tests that need other server environment variables
override `jupyter_lab_env`, or start their own server with `running_jupyter_lab`.

Where the browser stack is missing the tests skip, except under CI=true, where they
fail: CI must never go green by not running them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .harness import (
    CHROMIUM_PATH,
    JupyterLab,
    chromium_page,
    running_jupyter_lab,
    screenshot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

_BROWSER_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything here needs a browser: mark it so `-m "not browser"` can never pull a
    # browser test into the fast suite, even if a test forgets its marker.
    for item in items:
        if _BROWSER_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Remember each phase's outcome so `browser_page` can screenshot a failed test.
    report = yield
    setattr(item, f"report_{call.when}", report)
    return report


def _missing_browser_stack() -> str | None:
    for module, install in (
        ("playwright", "pip install playwright"),
        ("jupyterlab", "pip install jupyterlab"),
        ("ipywidgets", "pip install ipywidgets"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"Python package {module!r} is missing ({install})."
    if not CHROMIUM_PATH.exists():
        return f"{CHROMIUM_PATH} is missing (apt-get install -y chromium)."
    return None


@pytest.fixture(scope="session")
def browser_stack() -> None:
    """Skip (or under CI=true, fail) when Chromium or a browser-test package is absent."""
    missing = _missing_browser_stack()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run under CI: {missing}", pytrace=False)
    pytest.skip(f"browser tests need Chromium and Playwright: {missing}")


@pytest.fixture(scope="session")
def jupyter_lab_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Extra environment for the session's JupyterLab and its kernels; override it.

    By default the kernels keep orbits_nb state in a throwaway file, not the work tree
    (the same ORBITS_NB_STATE convention as the autouse fixture in tests/conftest.py).
    """
    state = tmp_path_factory.mktemp("orbits-state") / "state.duckdb"
    return {"ORBITS_NB_STATE": str(state)}


@pytest.fixture(scope="session")
def jupyter_lab(
    browser_stack: None,
    jupyter_lab_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JupyterLab]:
    """One JupyterLab server for the session, killed with its kernels at the end."""
    with running_jupyter_lab(tmp_path_factory.mktemp("jupyterlab"), jupyter_lab_env) as lab:
        yield lab


@pytest.fixture(autouse=True)
def _fresh_kernels_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    # The server outlives each test; without this a test that reopens a notebook path
    # would reattach to the previous test's kernel and inherit its variables.
    yield
    lab = getattr(request.node, "funcargs", {}).get("jupyter_lab")
    if isinstance(lab, JupyterLab):
        lab.shut_down_kernels()


@pytest.fixture
def browser_page(
    browser_stack: None,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Page]:
    """A page in a fresh headless Chromium; screenshots itself if the test fails."""
    with chromium_page(tmp_path_factory.mktemp("chromium-profile")) as page:
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        yield page
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            path = screenshot(page, f"FAILED-{request.node.name}")
            path.with_suffix(".console.txt").write_text("\n".join(console), encoding="utf-8")
