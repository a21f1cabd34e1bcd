"""A run as OpenTelemetry spans: an OTLP/JSON file, or sent to an OTLP endpoint.

The spans of a run form one trace whose id derives from the run id (the same run
always gives the same trace, and span ids derive from what they stand for): a span for
the run, one per execution under it, one per step attempt under the execution it
started in, and a nested run under the attempt of its workflow step. A step that the
latest execution replayed from the record gets an instant span there, linked to the
attempt that did the work. Attributes name the step, attempt, execution, action,
worker and ``orbits_nb.status``; never arguments or results, and error messages are
masked as everywhere.

Without extras the spans go to a file in the OTLP/JSON encoding (the
``ExportTraceServiceRequest`` mapping: ``resourceSpans`` / ``scopeSpans`` / ``spans``,
hex ids, unix nanoseconds as strings). With ``orbits_nb[otel]`` installed and
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, they are
sent by the OpenTelemetry SDK's OTLP/HTTP exporter (its ``OTEL_*`` variables apply).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.masking import mask
from orbits_nb.core.state import AttemptSpan, RunState, StepState, apply, short_error

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OK, _ERROR, _UNSET = 1, 2, 0
_CODES = {"succeeded": _OK, "failed": _ERROR, "retrying": _ERROR, "interrupted": _ERROR,
          "abandoned": _ERROR}


@dataclass
class Span:
    """One span, in the terms of the OTLP data model (ids as hex)."""

    name: str
    span_id: str
    parent_id: str | None
    start: float
    end: float
    attributes: dict[str, Any]
    status: str
    message: str = ""
    links: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        return _CODES.get(self.status, _UNSET)


@dataclass(frozen=True)
class Exported:
    """Where a trace went: ``spans`` written to ``path`` or sent to ``endpoint``."""

    trace_id: str
    spans: int
    path: Path | None = None
    endpoint: str | None = None

    def __str__(self) -> str:
        where = self.path if self.path is not None else self.endpoint
        return f"{self.spans} spans of trace {self.trace_id} -> {where}"


def trace_id(run_id: str) -> str:
    """The 16-byte trace id of a run (hex), derived from its id."""
    return hashlib.sha256(f"orbits_nb trace {run_id}".encode()).hexdigest()[:32]


def _span_id(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    digest = hashlib.sha256(f"orbits_nb span {text}".encode()).hexdigest()[:16]
    return digest if digest != "0" * 16 else "1" * 16  # an all-zero id is invalid


@dataclass
class Recorded:
    """A run's state, and every attempt of each step as executed: also those of
    earlier incarnations (a step run afresh after a failure, or reset), which the
    state keeps no more."""

    state: RunState
    attempts: dict[str, list[AttemptSpan]]


def fold_all(run_id: str, events: list[Any]) -> Recorded:
    """Fold ``events`` keeping every attempt span any step ever had."""
    state = RunState(run_id)
    seen: dict[str, dict[int, AttemptSpan]] = {}
    for event in events:
        apply(state, event)
        step = state.steps.get(event.step) if event.step else None
        if step is not None and step.spans:
            seen.setdefault(step.key, {})[id(step.spans[-1])] = step.spans[-1]
    return Recorded(state, {key: sorted(spans.values(), key=lambda a: a.started_at)
                            for key, spans in seen.items()})


def run_spans(states: dict[str, Recorded], run_id: str,
              parent_id: str | None = None) -> list[Span]:
    """The spans of ``run_id`` and of its nested runs found in ``states``."""
    state = states[run_id].state
    end_of_run = state.last_event_at or state.created_at or 0.0
    root_id = _span_id(run_id, "run")
    starts = [s.started_at for s in state.spans] or [state.created_at or end_of_run]
    spans = [Span(state.workflow.rsplit(":", 1)[-1] or run_id, root_id, parent_id,
                  min(starts), end_of_run, {"orbits_nb.run_id": run_id,
                                             "orbits_nb.workflow": state.workflow,
                                             "orbits_nb.status": state.status,
                                             "orbits_nb.executions": state.executions,
                                             "orbits_nb.had_failures": state.had_failures},
                  state.status, _message(state.error))]
    executions = {}
    for execution in state.spans:
        executions[execution.execution] = _span_id(run_id, "execution", execution.execution)
        attributes = {"orbits_nb.run_id": run_id, "execution": execution.execution,
                      "orbits_nb.status": execution.status}
        attributes.update({k: v for k, v in (
            ("host", execution.host), ("pid", execution.pid),
            ("worker", getattr(execution, "worker", None))) if v is not None})
        spans.append(Span(f"execution {execution.execution}",
                          executions[execution.execution], root_id, execution.started_at,
                          execution.finished_at or end_of_run, attributes, execution.status))
    for step in state.ordered_steps():
        spans += _step_spans(states, state, step, executions, root_id, end_of_run)
    return spans


def _step_spans(states: dict[str, Recorded], state: RunState, step: StepState,
                executions: dict[int, str], root_id: str, end_of_run: float) -> list[Span]:
    spans = []
    attempts = states[state.run_id].attempts.get(step.key, step.spans)
    base = {"orbits_nb.run_id": state.run_id, "step": step.key,
            "action": step.action.rsplit(":", 1)[-1]}
    last_id = None
    for index, attempt in enumerate(attempts):
        last_id = _span_id(state.run_id, "attempt", step.key, attempt.attempt,
                           attempt.started_at)
        attributes = {**base, "attempt": attempt.attempt, "execution": attempt.execution,
                      "orbits_nb.status": attempt.status}
        worker = attempt.worker or (step.worker if index == len(attempts) - 1 else None)
        if worker:
            attributes["worker"] = worker
        failed = attempt.status in ("failed", "retrying") and index == len(attempts) - 1
        spans.append(Span(step.key, last_id, executions.get(attempt.execution, root_id),
                          attempt.started_at, attempt.finished_at or end_of_run, attributes,
                          attempt.status,
                          _message(step.error) if failed else attempt.status
                          if _CODES.get(attempt.status) == _ERROR else ""))
    if last_id is not None and step.replayed_in(state.executions):
        latest = state.spans[-1]
        spans.append(Span(f"{step.key} (replayed)",
                          _span_id(state.run_id, "replayed", step.key, latest.execution),
                          executions.get(latest.execution, root_id), latest.started_at,
                          latest.started_at,
                          {**base, "execution": latest.execution,
                           "orbits_nb.status": "replayed", "attempt": step.attempts},
                          "replayed", links=[last_id]))
    if step.child_run_id and step.child_run_id in states:
        spans += run_spans(states, step.child_run_id, last_id or root_id)
    return spans


def _message(error: dict[str, Any] | None) -> str:
    return mask(short_error(error))


def collect(engine: Engine, run_id: str) -> dict[str, Recorded]:
    """What was recorded of ``run_id`` and of every run nested in it, by run id."""
    engine.writer.flush_for_read()
    states: dict[str, Recorded] = {}
    pending = [run_id]
    while pending:
        current = pending.pop()
        recorded = fold_all(current, engine.store.load_run(current))
        states[current] = recorded
        pending += [s.child_run_id for s in recorded.state.steps.values()
                    if s.child_run_id and s.child_run_id not in states]
    return states


# -- the OTLP/JSON encoding ---------------------------------------------------------------
def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": mask(str(value))}


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in values.items() if v is not None]


def _nanos(seconds: float) -> str:
    return str(round(seconds * 1_000_000) * 1000)


def otlp_json(run_id: str, spans: list[Span]) -> dict[str, Any]:
    """The ``ExportTraceServiceRequest`` of ``spans`` in OTLP's JSON mapping."""
    from orbits_nb import __version__

    trace = trace_id(run_id)
    encoded = []
    for span in spans:
        item: dict[str, Any] = {
            "traceId": trace, "spanId": span.span_id, "name": span.name, "kind": 1,
            "startTimeUnixNano": _nanos(span.start),
            "endTimeUnixNano": _nanos(max(span.end, span.start)),
            "attributes": _attributes(span.attributes),
            "status": {"code": span.code, **({"message": span.message}
                                              if span.message else {})}}
        if span.parent_id:
            item["parentSpanId"] = span.parent_id
        if span.links:
            item["links"] = [{"traceId": trace, "spanId": link} for link in span.links]
        encoded.append(item)
    resource = {"attributes": _attributes({"service.name": "orbits_nb",
                                           "orbits_nb.run_id": run_id})}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [
        {"scope": {"name": "orbits_nb", "version": __version__}, "spans": encoded}]}]}


def endpoint() -> str | None:
    """The OTLP endpoint the standard variables name, if any."""
    for name in ENDPOINT_VARIABLES:
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    return None


def default_path(run_id: str) -> Path:
    return Path(re.sub(r"[^A-Za-z0-9._-]+", "_", run_id) + ".otlp.json")


def write(run_id: str, spans: list[Span], path: Path) -> Exported:
    from orbits_nb.core.errors import InvalidArgument

    body = json.dumps(otlp_json(run_id, spans), indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part")
        temporary.write_text(body, encoding="utf-8")
        temporary.replace(path)  # never a half-written trace file
    except OSError as err:
        raise InvalidArgument(f"cannot write the trace to {path}: {err.strerror or err}; "
                              "pass another path", path=str(path)) from None
    return Exported(trace_id(run_id), len(spans), path=path)


def send(run_id: str, spans: list[Span], url: str) -> Exported:
    """Send ``spans`` with the OpenTelemetry SDK's OTLP/HTTP exporter."""
    from orbits_nb.core.errors import OrbitsError
    from orbits_nb.export.otel import export_spans

    if not export_spans(run_id, spans):
        raise OrbitsError(f"the OTLP endpoint {url} did not accept the trace of run "
                          f"{run_id}; check that a collector listens there (or unset "
                          f"{' and '.join(ENDPOINT_VARIABLES)} to write a file)",
                          endpoint=url, run_id=run_id)
    return Exported(trace_id(run_id), len(spans), endpoint=url)
