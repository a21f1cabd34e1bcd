"""Sending a run's spans with the OpenTelemetry SDK (the ``otel`` extra).

The spans are built as the SDK's finished spans, with the ids and times the trace
module derived, and handed to its OTLP/HTTP exporter, which reads the standard
``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout, compression).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from orbits_nb._optional import needs

if TYPE_CHECKING:
    from orbits_nb.export.trace import Span


def _nanos(seconds: float) -> int:
    return round(seconds * 1_000_000) * 1000


def export_spans(run_id: str, spans: list[Span]) -> bool:
    """Whether the endpoint accepted ``spans`` (the trace of ``run_id``)."""
    with needs("otel", "sending a trace to an OTLP endpoint"):
        from opentelemetry import trace as api
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from orbits_nb import __version__
    from orbits_nb.core.masking import mask
    from orbits_nb.export.trace import trace_id

    trace = int(trace_id(run_id), 16)
    flags = api.TraceFlags(api.TraceFlags.SAMPLED)

    def context(span_id: str) -> Any:
        return api.SpanContext(trace, int(span_id, 16), is_remote=False, trace_flags=flags)

    resource = Resource.create({"service.name": "orbits_nb", "orbits_nb.run_id": run_id})
    scope = InstrumentationScope("orbits_nb", __version__)
    codes = {1: api.StatusCode.OK, 2: api.StatusCode.ERROR, 0: api.StatusCode.UNSET}
    finished = [
        ReadableSpan(
            span.name, context=context(span.span_id),
            parent=context(span.parent_id) if span.parent_id else None,
            resource=resource, kind=api.SpanKind.INTERNAL,
            attributes={k: mask(v) if isinstance(v, str) else v
                        for k, v in span.attributes.items() if v is not None},
            links=[api.Link(context(link)) for link in span.links],
            status=api.Status(codes[span.code],
                              span.message if span.code == 2 else None),
            start_time=_nanos(span.start), end_time=_nanos(max(span.end, span.start)),
            instrumentation_scope=scope)
        for span in spans]
    exporter = OTLPSpanExporter()
    try:
        return bool(exporter.export(finished) == SpanExportResult.SUCCESS)
    finally:
        cast(Any, exporter).shutdown()  # typed in some releases, not in others
