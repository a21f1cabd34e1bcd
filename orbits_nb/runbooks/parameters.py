"""Runbook parameters: introspected from the ``parameters`` cell, validated before a kernel.

A parameter is a top-level assignment in the cell tagged ``parameters``::

    client = "acme"                    # the client to deploy
    replicas: int = 2                  # annotations give the type...
    ratio = 0.5                        # ...else the default's type does
    region: str = None                 # required: the AWS region
    slack_webhook = ""                 # secret by its name (see SECRET_SUFFIXES)
    api_key = ob.Secret.from_env("API_KEY")   # secret by its default
    headless = False                   # the runner sets it to True

A trailing comment is the parameter's help. It may start with the flags ``required``
and/or ``secret`` (``# required, secret: the API token``). Types are ``str``, ``int``,
``float``, ``bool``, ``list``, ``dict`` (``Optional[...]``/``X | None`` allow None);
other annotations and non-literal defaults accept any JSON value.

Secret parameters never reach the notebook source, the store or the logs: the kernel
receives them through environment variables and sees :class:`orbits_nb.Secret` objects.
On the command line ``-p name env:VARIABLE`` passes a secret by reference (the only
form a schedule may store); any other value is used for this run only.
"""

from __future__ import annotations

import ast
import io
import math
import os
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbits_nb.core.serde import MASK
from orbits_nb.runbooks import notebook as nbfile
from orbits_nb.runbooks.errors import ParameterError

TYPES = ("str", "int", "float", "bool", "list", "dict", "any")
SECRET_SUFFIXES = ("_token", "_secret", "_password", "_passwd", "_webhook", "_api_key",
                   "_credentials")
SECRET_NAMES = ("token", "secret", "password", "webhook", "api_key", "credentials")
HEADLESS = "headless"
_ANNOTATIONS = {"str": "str", "int": "int", "float": "float", "bool": "bool",
                "list": "list", "List": "list", "tuple": "list", "dict": "dict",
                "Dict": "dict", "Any": "any", "object": "any", "Secret": "str"}
_FLAGS = ("required", "secret")


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of a runbook."""

    name: str
    type: str = "any"
    default: Any = None
    default_source: str = ""
    required: bool = False
    secret: bool = False
    nullable: bool = False
    help: str = ""
    line: int = 0

    def describe_default(self) -> str:
        if self.required and not self.default_source:
            return "(required)"
        if self.secret and not is_secret_call(self.default_source):
            return MASK if self.default not in (None, "") else repr(self.default)
        return self.default_source


@dataclass
class Signature:
    """The parameters of one notebook (``cell`` is None when it has no parameters cell)."""

    notebook: Path
    cell: int | None
    parameters: dict[str, Parameter] = field(default_factory=dict)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_NAMES or lowered.endswith(SECRET_SUFFIXES)


def inspect(path: str | Path) -> Signature:
    """The parameters declared by the runbook at ``path`` (a file or a URL).

    >>> sig = inspect("notebooks/quickstart.ipynb")    # doctest: +SKIP
    >>> sig.parameters["client"].type                   # doctest: +SKIP
    'str'
    """
    if nbfile.is_url(str(path)):  # read through papermill's I/O handler for its scheme
        copy = nbfile.fetch(str(path))
        try:
            return signature_of(copy, nbfile.load(copy))
        finally:
            nbfile.discard(copy)
    notebook = nbfile.resolve(path)
    data = nbfile.load(notebook)
    return signature_of(notebook, data)


def signature_of(notebook: Path, data: dict[str, Any]) -> Signature:
    index = nbfile.parameters_cell(data)
    if index is None:
        return Signature(notebook, None)
    where = f"the parameters cell (cell {index}) of {notebook.name}"
    return Signature(notebook, index, parse_cell(nbfile.source(data["cells"][index]), where))


def parse_cell(source: str, where: str = "the parameters cell") -> dict[str, Parameter]:
    """The parameters declared by the Python ``source`` of a parameters cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ParameterError(f"{where} is not valid Python: {err.msg} at line {err.lineno}",
                             where=where) from None
    comments = _comments(source)
    found: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for param in _declared(node, source, comments, where):
                found[param.name] = param
    return found


def _comments(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return out


def _declared(node: ast.Assign | ast.AnnAssign, source: str, comments: dict[int, str],
              where: str) -> list[Parameter]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if not all(isinstance(t, ast.Name) for t in targets):
        raise ParameterError(
            f"{where}, line {node.lineno}: declare one parameter per assignment "
            f"(`name = value`), not {ast.get_source_segment(source, node)!r}", where=where)
    comment = comments.get(node.lineno) or comments.get(node.end_lineno or node.lineno, "")
    flags, help_text = _flags(comment)
    kind, nullable = ("any", False)
    if isinstance(node, ast.AnnAssign):
        kind, nullable = _annotation(node.annotation)
        if _name(node.annotation) == "Secret":
            flags.add("secret")
    value = node.value
    default_source = ast.get_source_segment(source, value) or "" if value else ""
    literal, default = _literal(value)
    secret = "secret" in flags or is_secret_call(default_source)
    if literal and kind == "any" and default is not None:
        kind = _type_of(default)
    nullable = nullable or (literal and default is None)
    if secret and kind == "any":
        kind = "str"
    params = []
    for target in targets:
        assert isinstance(target, ast.Name)
        name = target.id
        param = Parameter(name=name, type=kind, default=default if literal else None,
                          default_source=default_source,
                          required="required" in flags or value is None,
                          secret=secret or is_secret_name(name), nullable=nullable,
                          help=help_text, line=node.lineno)
        if literal and default is not None and not param.secret:
            problem = mismatch(param, default)
            if problem:
                raise ParameterError(f"{where}, line {node.lineno}: parameter {name!r} is "
                                     f"declared {kind} but its default {problem}",
                                     where=where, parameter=name)
        params.append(param)
    return params


def _flags(comment: str) -> tuple[set[str], str]:
    flags: set[str] = set()
    rest = comment
    while True:
        word = rest.split(None, 1)[0].rstrip(",:;") if rest.strip() else ""
        if word.lower() not in _FLAGS:
            break
        flags.add(word.lower())
        rest = rest.strip()[len(word):].lstrip(" ,:;-")
    return flags, rest.strip().lstrip(":;- ").strip()


def _annotation(node: ast.expr) -> tuple[str, bool]:
    if isinstance(node, ast.Constant) and node.value is None:
        return "any", True
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotation(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return "any", False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
        kinds = {_annotation(p)[0] for p in parts if not _is_none(p)}
        nullable = any(_is_none(p) or _annotation(p)[1] for p in parts)
        return (kinds.pop() if len(kinds) == 1 else "any"), nullable
    if isinstance(node, ast.Subscript):
        if _name(node.value) == "Optional":
            return _annotation(node.slice)[0], True
        return _ANNOTATIONS.get(_name(node.value), "any"), False
    return _ANNOTATIONS.get(_name(node), "any"), False


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _literal(node: ast.expr | None) -> tuple[bool, Any]:
    if node is None:
        return False, None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    if isinstance(value, tuple):
        value = list(value)
    return True, value


def is_secret_call(source: str) -> bool:
    """True when a default's source is a ``Secret(...)`` call (the notebook expects one)."""
    head = source.split("(", 1)[0].strip()
    return head.endswith(("Secret", "Secret.from_env", "Secret.env"))


def secret_default(param: Parameter, environ: Mapping[str, str] | None = None) -> str | None:
    """The clear value a secret parameter gets from its default, if any.

    A literal default (``api_token = "..."``), ``Secret("...")``, or the variable of
    ``Secret.from_env("VAR")`` / ``Secret.env("VAR")`` / ``Secret(env="VAR")`` read from
    ``environ`` (the runner's environment, which the kernel inherits).
    """
    if not param.secret:
        return None
    if isinstance(param.default, str):
        return param.default or None
    if not is_secret_call(param.default_source):
        return None
    try:
        call = ast.parse(param.default_source, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call):
        return None
    given = {kw.arg: kw.value for kw in call.keywords if kw.arg}
    first = call.args[0] if call.args else None
    if _name(call.func) in ("from_env", "env"):
        variable = _constant(first if first is not None else given.get("variable"))
    else:
        value = _constant(first if first is not None else given.get("value"))
        if value is not None:
            return value
        variable = _constant(given.get("env"))
    if variable is None:
        return None
    return (os.environ if environ is None else environ).get(variable) or None


def _constant(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    for kind, cls in (("int", int), ("float", float), ("str", str), ("list", list),
                      ("dict", dict)):
        if isinstance(value, cls):
            return kind
    return "any"


def mismatch(param: Parameter, value: Any) -> str:
    """'' when ``value`` fits ``param``, else what is wrong with it."""
    if value is None:
        return "" if param.nullable or param.type == "any" else "is None"
    kind = param.type
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value),
        "bool": isinstance(value, bool),
        "list": isinstance(value, (list, tuple)),
        "dict": isinstance(value, dict),
        "any": True,
    }[kind]
    if ok:
        return ""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"is {shown} ({type(value).__name__})"
