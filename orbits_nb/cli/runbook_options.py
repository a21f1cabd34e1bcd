"""The options of ``orbits-nb run`` and ``resume``: parameters and execution, as papermill
users type them.

Parameters merge in papermill's order, later ones winning: ``-b`` base64 YAML, ``-f``
files, ``-y`` YAML strings, ``-j`` JSON strings (each repeatable, in the order given),
then ``-p NAME VALUE`` (typed by the parameter's declaration) and ``-r NAME VALUE``
(the raw string, never converted).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from pathlib import Path
from typing import Any

from orbits_nb.cli import arguments

SAVE_HELP = ("save the output notebook after each cell (default: on; off writes it once "
             "at the end)")


def parameter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--parameter", "--parameters", nargs=2, action="append",
                        default=[], metavar=("NAME", "VALUE"), dest="parameter",
                        help="a parameter, typed by its declaration (secrets: "
                             "env:VARIABLE reads the value from the environment)")
    parser.add_argument("-r", "--parameters-raw", "--parameters_raw", nargs=2,
                        action="append", default=[], metavar=("NAME", "VALUE"),
                        dest="parameters_raw", help="a parameter as the raw string VALUE")
    parser.add_argument("-f", "--parameters-file", "--parameters_file", action="append",
                        default=[], metavar="FILE", dest="parameters_file",
                        help="parameters from a YAML or JSON file (repeatable, merged in "
                             "order)")
    parser.add_argument("-y", "--parameters-yaml", "--parameters_yaml", action="append",
                        default=[], metavar="YAML", dest="parameters_yaml",
                        help="parameters as a YAML mapping (repeatable)")
    parser.add_argument("-j", "--parameters-json", action="append", default=[],
                        metavar="JSON", help="parameters as a JSON object (repeatable)")
    parser.add_argument("-b", "--parameters-base64", "--parameters_base64",
                        action="append", default=[], metavar="BASE64",
                        dest="parameters_base64",
                        help="parameters as a base64-encoded YAML mapping (repeatable)")


def execution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", metavar="DIR", type=arguments.text,
                        help="output folder (default: $ORBITS_NB_OUTPUT, else output/ in "
                             "the project root)")
    parser.add_argument("-k", "--kernel", type=arguments.text,
                        help="kernel name (default: the notebook's)")
    parser.add_argument("--cwd", type=arguments.directory, metavar="DIR",
                        help="working directory of the kernel (default: the notebook's "
                             "folder)")
    parser.add_argument("--cell-timeout", "--execution-timeout", type=arguments.seconds,
                        metavar="SECONDS", dest="cell_timeout",
                        help="fail a cell that runs longer than this")
    parser.add_argument("--start-timeout", "--start_timeout", type=arguments.seconds,
                        default=60.0, metavar="SECONDS", dest="start_timeout",
                        help="how long the kernel may take to start (default: 60)")
    parser.add_argument("--progress", "--progress-bar", action="store_true",
                        dest="progress", help="show a progress bar")
    parser.add_argument("--no-progress-bar", action="store_false", dest="progress",
                        help="no progress bar (the default)")
    parser.add_argument("--log-output", action=argparse.BooleanOptionalAction,
                        default=False,
                        help="echo cell output to the console (secrets masked)")
    parser.add_argument("--stdout-file", metavar="FILE",
                        help="write the cells' stdout to FILE (secrets masked)")
    parser.add_argument("--stderr-file", metavar="FILE",
                        help="write the cells' stderr to FILE (secrets masked)")
    parser.add_argument("--report-mode", action=argparse.BooleanOptionalAction,
                        default=False, help="hide the input of code cells in the output")
    parser.add_argument("--request-save-on-cell-execute",
                        action=argparse.BooleanOptionalAction, default=True, help=SAVE_HELP)
    parser.add_argument("--autosave-cell-every", type=arguments.count, default=30,
                        metavar="SECONDS", help="save during a long cell this often "
                        "(default: 30; 0 turns it off)")


def given(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters from files, YAML, JSON, base64 and ``-r``, merged in papermill's order."""
    from orbits_nb.runbooks.errors import ParameterError

    values: dict[str, Any] = {}
    for text in args.parameters_base64:
        try:
            decoded = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ParameterError(f"--parameters-base64 {text[:40]!r} is not base64-encoded "
                                 "text") from None
        values.update(_mapping(_yaml(decoded, "--parameters-base64"), "--parameters-base64"))
    for name in args.parameters_file:
        values.update(_file(Path(name)))
    for text in args.parameters_yaml:
        values.update(_mapping(_yaml(text, "--parameters-yaml"), "--parameters-yaml"))
    for text in args.parameters_json:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise ParameterError(f"--parameters-json is not valid JSON: {err}") from None
        values.update(_mapping(loaded, "--parameters-json"))
    values.update(dict(args.parameters_raw))
    return values


def pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``-p`` pairs to type by declaration (a name also given with ``-r`` stays raw)."""
    raw = {name for name, _ in args.parameters_raw}
    return [(name, value) for name, value in args.parameter if name not in raw]


def options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`orbits_nb.runbooks.execute.prepare`."""
    return {"output_dir": args.output_dir, "kernel": args.kernel, "cwd": args.cwd,
            "cell_timeout": args.cell_timeout, "start_timeout": args.start_timeout,
            "progress": args.progress, "log_output": args.log_output,
            "stdout_file": args.stdout_file, "stderr_file": args.stderr_file,
            "report_mode": args.report_mode,
            "request_save_on_cell_execute": args.request_save_on_cell_execute,
            "autosave_cell_every": args.autosave_cell_every}


def _file(path: Path) -> dict[str, Any]:
    from orbits_nb.runbooks.errors import ParameterError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ParameterError(f"cannot read parameters file {path}: {err}") from None
    if path.suffix == ".json":
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise ParameterError(f"parameters file {path} is not valid JSON: {err}") from None
    else:  # YAML, as papermill reads it (JSON is YAML too)
        loaded = _yaml(text, f"parameters file {path}")
    return _mapping(loaded, f"parameters file {path}")


def _yaml(text: str, source: str) -> Any:
    import yaml

    from orbits_nb.runbooks.errors import ParameterError

    class NoDates(yaml.SafeLoader):  # type: ignore[misc]
        """Dates stay strings, as papermill reads them."""

    NoDates.yaml_implicit_resolvers = {
        key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    try:
        return yaml.load(text, Loader=NoDates)
    except yaml.YAMLError as err:
        raise ParameterError(f"{source} is not valid YAML: {err}") from None


def _mapping(loaded: Any, source: str) -> dict[str, Any]:
    from orbits_nb.runbooks.errors import ParameterError

    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ParameterError(f"{source} must hold a mapping of parameter names to values, "
                             f"got {type(loaded).__name__}")
    return loaded
