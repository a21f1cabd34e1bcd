"""Exports of the recorded history to other tools (OpenTelemetry traces)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine
    from orbits_nb.export.trace import Exported

__all__ = ["export_trace"]


def export_trace(run_id: str, path: str | Path | None = None, *,
                 engine: Engine | None = None) -> Exported:
    """Write the run ``run_id`` (and the runs nested in it) as OpenTelemetry spans.

    One trace per run (its id derives from the run id): a span for the run, one per
    execution, one per step attempt (``step``, ``attempt``, ``execution``, ``action``,
    ``worker``, ``orbits_nb.status``), nested runs under their step. With ``path``, or
    when no OTLP endpoint is configured, an OTLP/JSON file is written (default
    ``RUN_ID.otlp.json`` in the working directory); else, with ``orbits_nb[otel]``
    installed and ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the spans are sent there.

    >>> ob.export_trace(run.run_id, "trace.json")             # doctest: +SKIP
    """
    from orbits_nb._filters import check_text
    from orbits_nb.engine.engine import default_engine
    from orbits_nb.export import trace

    run_id = check_text(run_id, "run_id") or ""
    engine = engine or default_engine()
    engine.get_run(run_id)  # an unknown run is named before anything is written
    states = trace.collect(engine, run_id)
    spans = trace.run_spans(states, run_id)
    url = trace.endpoint()
    if path is None and url is not None:
        return trace.send(run_id, spans, url)
    return trace.write(run_id, spans, Path(path) if path is not None
                       else trace.default_path(run_id))
