"""``orbits-nb trace RUN_ID [-o FILE]``: a run as OpenTelemetry spans."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from orbits_nb.cli import arguments


def register(commands: Any) -> None:
    trace = commands.add_parser(
        "trace", help="export a run as OpenTelemetry spans (OTLP)",
        description="Write RUN_ID and the runs nested in it as OpenTelemetry spans: one "
                    "per execution and per step attempt. With -o, or when no OTLP "
                    "endpoint is set, an OTLP/JSON file (default RUN_ID.otlp.json); "
                    "else, with orbits_nb[otel] installed, sent to "
                    "$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT.")
    trace.add_argument("run_id", metavar="RUN_ID", type=arguments.text)
    trace.add_argument("-o", "--output", metavar="FILE", type=Path,
                       help="write the OTLP/JSON file here")
    trace.set_defaults(handler=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    from orbits_nb.cli.runs import _run
    from orbits_nb.export import export_trace

    run = _run(args.run_id)  # an unknown run, or no state, says so first
    print(f"orbits-nb: {export_trace(run.run_id, args.output)}")
    return 0
