"""A run exported as OpenTelemetry spans: an OTLP/JSON file, or sent to an endpoint."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event
from orbits_nb.export.trace import trace_id

TOKEN = "tok-" + "9f8e7d6c5b4a" * 2


class Flaky(ob.Action):
    retry = ob.Retry(attempts=2, delay=0.01)

    def main(self) -> Any:
        if self.attempt < 2:
            raise ValueError(f"first try with {self.args['token'].reveal()}")
        return self.attempt


class Leaf(ob.Action):
    def main(self) -> Any:
        return "leaf"


class Gate(ob.Action):
    closed = True

    def main(self) -> Any:
        if Gate.closed:
            raise RuntimeError("closed")
        return "open"


class Inner(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("leaf", Leaf())


class Outer(ob.Workflow):
    async def define(self) -> Any:
        await self.do("flaky", Flaky(token=ob.Secret(TOKEN, name="token")))
        await self.do("inner", Inner())
        return await self.do("gate", Gate())


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[ob.Engine]:
    engine = ob.Engine(tmp_path / "s.duckdb")
    try:
        Gate.closed = True
        with pytest.raises(ob.StepFailed):
            engine.start(Outer(), run_id="outer").wait(60)
        Gate.closed = False
        engine.start(Outer(), run_id="outer").wait(60)  # replays flaky and inner
        yield engine
    finally:
        engine.close()


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    (resource,) = document["resourceSpans"]
    (scope,) = resource["scopeSpans"]
    assert scope["scope"]["name"] == "orbits_nb"
    return scope["spans"]  # type: ignore[no-any-return]


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def test_the_file_holds_one_trace_of_executions_attempts_and_nested_runs(
        engine: ob.Engine, tmp_path: Path) -> None:
    out = ob.export_trace("outer", tmp_path / "t.json", engine=engine)
    assert out.path == tmp_path / "t.json" and out.trace_id == trace_id("outer")
    text = out.path.read_text()
    assert TOKEN not in text  # the revealed secret in the recorded error stays masked
    spans = _spans(json.loads(text))
    assert out.spans == len(spans)
    by_id = {s["spanId"]: s for s in spans}
    assert len(by_id) == len(spans)
    for span in spans:
        assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and \
            span["traceId"] == trace_id("outer")
        assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
        assert span.get("parentSpanId") is None or span["parentSpanId"] in by_id
        assert span["startTimeUnixNano"].isdigit() and span["endTimeUnixNano"].isdigit()
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
    (root,) = [s for s in spans if "parentSpanId" not in s]
    assert root["name"] == "Outer" and _attrs(root)["orbits_nb.executions"] == "2"
    executions = [s for s in spans if s.get("parentSpanId") == root["spanId"]]
    assert [(s["name"], _attrs(s)["orbits_nb.status"]) for s in executions] == [
        ("execution 1", "failed"), ("execution 2", "succeeded")]
    first, second = (e["spanId"] for e in executions)
    attempts = [(s["name"], _attrs(s)["attempt"], s["parentSpanId"], s["status"]["code"])
                for s in spans if s.get("parentSpanId") in (first, second)
                and _attrs(s)["orbits_nb.status"] != "replayed"]
    # every attempt as executed, the failed one of the first execution too
    assert attempts == [("flaky", "1", first, 2), ("flaky", "2", first, 1),
                        ("inner", "1", first, 1), ("gate", "1", first, 2),
                        ("gate", "2", second, 1)]
    replayed = [s for s in spans if _attrs(s)["orbits_nb.status"] == "replayed"]
    assert {s["name"] for s in replayed} == {"flaky (replayed)", "inner (replayed)"}
    assert all(s["parentSpanId"] == second and s["links"][0]["spanId"] in by_id
               for s in replayed)
    inner_attempt = next(s for s in spans if s["name"] == "inner"
                         and _attrs(s)["orbits_nb.status"] == "succeeded")
    (child,) = [s for s in spans if s.get("parentSpanId") == inner_attempt["spanId"]]
    assert _attrs(child)["orbits_nb.run_id"] == "outer/inner"
    leaf = next(s for s in spans if s["name"] == "leaf")
    assert by_id[leaf["parentSpanId"]]["parentSpanId"] == child["spanId"]
    # the same run gives the same trace
    again = ob.export_trace("outer", tmp_path / "again.json", engine=engine)
    assert again.path is not None and again.path.read_text() == text


def test_an_interrupted_attempt_is_an_error_span_that_says_so(tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "s.duckdb")
    try:
        engine.store.write(Batch(events=[
            Event("r", "run.created", ts=0.0, data={"workflow": "m:W"}),
            Event("r", "run.started", ts=1.0, data={"host": "h", "pid": 1}),
            Event("r", "step.started", "a", 1, ts=1.0, data={"action": "m:A"}),
            Event("r", "run.started", ts=60.0, data={"host": "h", "pid": 2}),
            Event("r", "step.started", "a", 2, ts=60.0, data={}),
            Event("r", "step.succeeded", "a", 2, ts=61.0, data={"result": 1}),
            Event("r", "run.succeeded", ts=61.0, data={})]))
        out = ob.export_trace("r", tmp_path / "r.json", engine=engine)
        assert out.path is not None
        spans = _spans(json.loads(out.path.read_text()))
        first = next(s for s in spans if s["name"] == "a" and _attrs(s)["attempt"] == "1")
        assert _attrs(first)["orbits_nb.status"] == "interrupted"
        assert first["status"] == {"code": 2, "message": "interrupted"}
        assert first["endTimeUnixNano"] == str(1_000_000_000)  # not the dead minute
    finally:
        engine.close()


def test_the_cli_writes_the_file_and_names_an_unknown_run(engine: ob.Engine,
                                                          tmp_path: Path) -> None:
    engine.writer.flush()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["ORBITS_NB_STATE"] = str(tmp_path / "s.duckdb")
    target = tmp_path / "cli.json"
    out = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "trace", "outer", "-o",
                          str(target)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert str(target) in out.stdout and _spans(json.loads(target.read_text()))
    missing = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "trace", "nope"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert missing.returncode != 0 and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_endpoint_without_the_extra_says_what_to_install(
        engine: ob.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    with pytest.raises(ob.MissingDependency, match=r"orbits_nb\[otel\]"):
        ob.export_trace("outer", engine=engine)


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (the handler's protocol)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_with_the_extra_the_spans_go_to_the_otlp_endpoint(
        engine: ob.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    server = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)
        sent = ob.export_trace("outer", engine=engine)
    finally:
        server.shutdown()
        server.server_close()
    assert sent.endpoint == url and sent.path is None
    ((path, kind, body),) = _Collector.received
    assert path == "/v1/traces" and kind == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    got = {(s.span_id.hex(), s.parent_span_id.hex(), s.name, s.trace_id.hex())
           for r in request.resource_spans for sc in r.scope_spans for s in sc.spans}
    written = ob.export_trace("outer", tmp_path / "same.json", engine=engine)
    assert written.path is not None
    want = {(s["spanId"], s.get("parentSpanId", ""), s["name"], s["traceId"])
            for s in _spans(json.loads(written.path.read_text()))}
    assert got == want
    assert TOKEN.encode() not in body
