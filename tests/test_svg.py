"""Real renders of DOT to SVG through system Graphviz and through the bundled graphviz-pure."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest

from orbits_nb.views import svg
from orbits_nb.views.svg import (
    ENV_VAR,
    RendererUnavailable,
    RenderFailed,
    render_svg,
    renderer_name,
    svg_or_none,
)

GRAPH = """
digraph runbook {
  node [shape=box, style=filled, fillcolor="#e8f0fe", fontname=Helvetica];
  subgraph cluster_ingest { label="Ingest"; fetch; parse; }
  subgraph cluster_apply { label="Apply"; plan; apply; }
  fetch [fillcolor=palegreen];
  apply [fillcolor="#ff8800"];
  report [shape=plaintext, style="", label=<<b>Report</b> &amp; <i>notify</i>>];
  fetch -> parse -> plan -> apply -> report;
  fetch -> plan [style=dashed];
}
"""


@pytest.fixture(autouse=True)
def fresh_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    # Which backend was found is remembered per process; each test starts from scratch.
    monkeypatch.setattr(svg, "_found", {})


@pytest.fixture(params=["system", "bundled"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    mode: str = request.param
    if mode == "system" and shutil.which("dot") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have Graphviz's `dot` (apt-get install graphviz)")
        pytest.skip("no system `dot` here; CI runs this path")
    monkeypatch.setenv(ENV_VAR, mode)
    return mode


def test_forced_backend_is_the_one_used(backend: str) -> None:
    expected = {"system": svg.SYSTEM_DOT, "bundled": svg.GRAPHVIZ_PURE}[backend]
    assert renderer_name() == expected, f"pip install graphviz-pure ({backend} path)"


def test_render_has_nodes_edges_clusters_colours_and_html_labels(backend: str) -> None:
    out = render_svg(GRAPH)

    assert out.startswith("<svg"), out[:200]
    assert out.rstrip().endswith("</svg>")
    assert "<?xml" not in out
    assert "<!DOCTYPE" not in out
    for node in ("fetch", "parse", "plan", "apply", "report"):
        assert f"<title>{node}</title>" in out
    assert out.count('class="node"') == 5
    assert out.count('class="edge"') == 5
    assert "<title>fetch&#45;&gt;plan</title>" in out
    assert "<title>cluster_ingest</title>" in out
    assert "<title>cluster_apply</title>" in out
    assert out.count('class="cluster"') == 2
    assert 'fill="palegreen"' in out
    assert 'fill="#ff8800"' in out
    assert 'fill="#e8f0fe"' in out
    # The HTML-like label must be laid out as rich text, not replaced by the node name.
    assert 'font-weight="bold"' in out
    assert 'font-style="italic"' in out
    assert ">Report</text>" in out
    assert ">notify</text>" in out


def test_other_engine(backend: str) -> None:
    out = render_svg("graph { a -- b -- c -- a }", engine="neato")

    assert out.count('class="node"') == 3
    assert out.count('class="edge"') == 3


def test_malformed_dot_reports_the_renderers_message(backend: str) -> None:
    with pytest.raises(RenderFailed) as info:
        render_svg("digraph { a -> ; }")

    message = str(info.value)
    assert "syntax error" in message
    assert "line 1" in message
    assert info.value.renderer == renderer_name()
    assert "syntax error" in info.value.detail
    assert svg_or_none("digraph { a -> ; }") is None


def test_bundled_renderer_needs_nothing_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel launched by absolute path may have neither `dot` nor the venv's bin on PATH.
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", "")

    assert renderer_name() == svg.GRAPHVIZ_PURE, "pip install graphviz-pure"
    assert "<title>fetch</title>" in render_svg(GRAPH)


def test_auto_prefers_system_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    if shutil.which("dot") is None:
        assert renderer_name() == svg.GRAPHVIZ_PURE
    else:
        assert renderer_name() == svg.SYSTEM_DOT


def test_none_override_makes_rendering_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "none")

    assert renderer_name() is None
    with pytest.raises(RendererUnavailable, match=f"{ENV_VAR}=none"):
        render_svg(GRAPH)
    assert svg_or_none(GRAPH) is None


def test_nothing_installed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "auto")
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(svg, "_graphviz_pure_program", lambda: None)

    with pytest.raises(RendererUnavailable) as info:
        render_svg(GRAPH)
    assert "pip install graphviz-pure" in str(info.value)
    assert "apt-get install graphviz" in str(info.value)
    assert svg_or_none(GRAPH) is None


def test_forced_system_without_dot_says_apt_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "system")
    monkeypatch.setenv("PATH", "")

    assert renderer_name() is None
    with pytest.raises(RendererUnavailable, match="apt-get install graphviz"):
        render_svg(GRAPH)


def test_bad_override_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "cairo")

    with pytest.raises(ValueError, match="'cairo'"):
        renderer_name()
    assert svg_or_none(GRAPH) is None


def test_bad_engine_is_rejected_before_running_anything() -> None:
    with pytest.raises(ValueError, match="'-o/tmp/x'"):
        render_svg("digraph { a }", engine="-o/tmp/x")


def test_timeout_is_a_render_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "bundled")
    big = "digraph {" + " ".join(f"n{i} -> n{(i * 7 + 3) % 3000};" for i in range(3000)) + "}"

    with pytest.raises(RenderFailed, match="did not finish"):
        render_svg(big, timeout=0.001)


def test_errors_pickle_with_their_fields() -> None:
    err = RenderFailed("boom", renderer="graphviz-pure", detail="syntax error")

    back = pickle.loads(pickle.dumps(err))

    assert type(back) is RenderFailed
    assert str(back) == "boom"
    assert (back.renderer, back.detail) == ("graphviz-pure", "syntax error")
    assert isinstance(back, RuntimeError)
