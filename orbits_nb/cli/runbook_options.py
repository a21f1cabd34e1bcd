"""The options of ``orbits-nb run`` and ``resume``: parameters and execution, as papermill
users type them.

Parameters merge in papermill's order, later ones winning: ``-b`` base64 YAML, ``-f``
files (local, or URLs read by papermill's I/O handlers), ``-y`` YAML strings, ``-j``
JSON strings (each repeatable, in the order given), then ``-p NAME VALUE`` (typed by
the parameter's declaration, or as papermill reads it with ``--raw-types``) and
``-r NAME VALUE`` (the raw string, never converted). Files, YAML and base64 are read
as papermill reads them: YAML 1.1 (JSON files too), dates kept as text.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import sys
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


def reading_options(parser: argparse.ArgumentParser) -> None:
    """How parameters are read: undeclared names and typed values."""
    parser.add_argument("--allow-undeclared", action="store_true",
                        help="inject parameters the notebook does not declare even when "
                             "they look like a typo of a declared one (by default only "
                             "those are refused; the others are injected with a warning, "
                             "as papermill does)")
    parser.add_argument("--raw-types", action="store_true",
                        help="read -p values as papermill does (True/False/None, int, "
                             "float, else text) instead of by their declared type, and "
                             "inject values that do not fit their type, with a warning")


def inject_options(parser: argparse.ArgumentParser) -> None:
    """papermill's PAPERMILL_INPUT_PATH / PAPERMILL_OUTPUT_PATH parameters."""
    parser.add_argument("--inject-input-path", action="store_true",
                        help="add the input notebook's path as parameter "
                             "PAPERMILL_INPUT_PATH")
    parser.add_argument("--inject-output-path", action="store_true",
                        help="add the output notebook's path as parameter "
                             "PAPERMILL_OUTPUT_PATH")
    parser.add_argument("--inject-paths", action="store_true",
                        help="both of the above")


def execution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", metavar="DIR", type=arguments.text,
                        help="output folder (default: $ORBITS_NB_OUTPUT, else output/ in "
                             "the project root)")
    parser.add_argument("-k", "--kernel", type=arguments.text,
                        help="kernel name (default: the notebook's)")
    parser.add_argument("-l", "--language", type=arguments.text,
                        help="language of the injected parameters (default: the "
                             "notebook's)")
    parser.add_argument("--engine", type=arguments.text,
                        help="papermill engine: nbclient, papermill's default, is the one "
                             "orbits-nb runs")
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
    parser.add_argument("--output-mode", type=_mode, metavar="MODE",
                        help="permission bits of the output notebook and log files, in "
                             "octal, e.g. 600 for reports that may show sensitive output "
                             "(default: as papermill, the umask; an existing file keeps "
                             "its mode)")
    parser.add_argument("--log-level", type=str.upper, default="INFO", choices=LEVELS,
                        help="what the runner says on stderr: INFO (default) also says "
                             "what runs, WARNING only departures from papermill and "
                             "problems, ERROR and CRITICAL only failures")


LEVELS = ("NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _mode(text: str) -> int:
    try:
        mode = int(text.lower().removeprefix("0o"), 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode such as 600 or "
                                         "640") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is not a mode from 000 to 777")
    return mode


def given(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters from files, YAML, JSON, base64 and ``-r``, merged in papermill's order."""
    from orbits_nb.runbooks.errors import ParameterError

    values: dict[str, Any] = {}
    for text in args.parameters_base64:
        try:
            # As papermill decodes it: characters outside the alphabet are skipped.
            decoded = base64.b64decode(text).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ParameterError(f"--parameters-base64 {text[:40]!r} is not base64-encoded "
                                 "text") from None
        values.update(_mapping(_yaml(decoded, "--parameters-base64"), "--parameters-base64"))
    for name in args.parameters_file:
        values.update(_file(name))
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
    found = {"output_dir": args.output_dir, "kernel": args.kernel, "cwd": args.cwd,
             "cell_timeout": args.cell_timeout, "start_timeout": args.start_timeout,
             "progress": args.progress, "log_output": args.log_output,
             "stdout_file": args.stdout_file, "stderr_file": args.stderr_file,
             "report_mode": args.report_mode,
             "request_save_on_cell_execute": args.request_save_on_cell_execute,
             "autosave_cell_every": args.autosave_cell_every, "language": args.language,
             "engine": args.engine, "output_mode": args.output_mode}
    if hasattr(args, "raw_types"):
        found["raw_types"] = args.raw_types
        found["undeclared"] = "inject" if args.allow_undeclared else "near"
    if hasattr(args, "inject_paths"):
        found["inject_input_path"] = args.inject_input_path or args.inject_paths
        found["inject_output_path"] = args.inject_output_path or args.inject_paths
    return found


class _Masked(logging.Formatter):
    """papermill's log lines with every secret value masked (nbclient logs at DEBUG
    what the kernel sends)."""

    def format(self, record: logging.LogRecord) -> str:
        from orbits_nb.core.masking import mask

        return mask(super().format(record))




def log_level(args: argparse.Namespace, output: str | None) -> int:
    """The level of what the runner says on stderr; papermill's log lines go there too,
    secrets masked (papermill lowers its default to ERROR when the notebook goes to
    stdout)."""
    level = max(logging.getLevelName(args.log_level), logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Masked("%(message)s"))
    logger = logging.getLogger("papermill")
    for old in [h for h in logger.handlers if isinstance(h.formatter, _Masked)]:
        logger.removeHandler(old)  # a command run again in one process (tests)
    logger.addHandler(handler)
    logger.propagate = False
    quiet = output == "-" and args.log_level == "INFO"
    logger.setLevel(logging.ERROR if quiet else level)
    return int(level)


def _file(name: str) -> dict[str, Any]:
    """A parameters file, local or a URL, read as papermill reads it (YAML)."""
    from orbits_nb.runbooks.errors import ParameterError
    from orbits_nb.runbooks.notebook import is_url

    if is_url(name):
        from papermill.iorw import papermill_io

        try:
            text = str(papermill_io.read(name, [".json", ".yaml", ".yml"]))
        except Exception as err:  # any I/O handler's failure, said in one line
            raise ParameterError(f"cannot read parameters file {name}: "
                                 f"{type(err).__name__}: {err}") from None
    else:
        try:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as err:
            raise ParameterError(f"cannot read parameters file {name}: {err}") from None
    return _mapping(_yaml(text, f"parameters file {name}"), f"parameters file {name}")


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
