"""Parameter values: read from the command line, validated, secrets kept apart.

Values are checked against a runbook's :class:`~orbits_nb.runbooks.parameters.Signature`
before any kernel starts. Secret parameters become :class:`orbits_nb.Secret` objects:
``-p name env:VARIABLE`` references a variable (the only form a schedule may store),
any other value is kept in memory for this run only.

How ``-p NAME TEXT`` is read: a declared type (annotation, else the default's type)
reads the text as that type (``str`` keeps it as text, ``int``, ``float``, ``bool``
takes true/false/yes/no/on/off/1/0, ``list``/``dict`` take JSON); an untyped or
undeclared parameter, or any parameter with ``raw_types``, gets papermill's reading
(``True``/``False``/``None``, an int, a float, else the text). Every value that differs
from what papermill would inject is reported in :attr:`Values.notes`.

Names that the parameters cell does not declare follow ``undeclared``: ``"refuse"``
(every one is an error), ``"near"`` (an error only for a near miss of a declared name,
``replica`` for ``replicas`` or ``Client`` for ``client``; the others are injected with
a note, as papermill injects them with a warning) or ``"inject"`` (all are injected,
with a note).
"""

from __future__ import annotations

import difflib
import json
import keyword
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import MASK, Secret, check_json
from orbits_nb.runbooks.errors import ParameterError
from orbits_nb.runbooks.parameters import (
    HEADLESS,
    Parameter,
    Signature,
    is_secret_call,
    is_secret_name,
    mismatch,
)

UNDECLARED = ("near", "inject", "refuse")
#: How alike (difflib's ratio) an undeclared name and a declared one are for a near miss.
NEAR_MISS = 0.8


@dataclass
class Values:
    """Validated parameter values: plain JSON ones, and secrets kept apart.

    ``notes`` says, one sentence each, where the run departs from what papermill would
    inject for the same input (undeclared names, typed readings, secrets, ``headless``):
    the command line prints them on stderr.
    """

    public: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The note of each undeclared name (those are in ``notes`` too).
    undeclared: dict[str, str] = field(default_factory=dict)

    def masked(self) -> dict[str, Any]:
        """For display and for the workflow runs' metadata: secrets are ``****``."""
        return {**self.public, **dict.fromkeys(self.secrets, MASK)}

    def recorded(self) -> dict[str, Any]:
        """For the store: secrets as references (``{"$secret": name, "env": VAR}``)."""
        return {**self.public, **{k: s.to_json() for k, s in self.secrets.items()}}

    def literal_secrets(self) -> list[str]:
        return [name for name, s in self.secrets.items() if s.env_var is None]


def from_cli(sig: Signature, pairs: list[tuple[str, str]], *, undeclared: str = "refuse",
             raw_types: bool = False, notes: list[str] | None = None) -> dict[str, Any]:
    """Turn ``-p name value`` strings into values (see the module docstring for how).

    A value that papermill would read differently adds a sentence to ``notes``.
    """
    out: dict[str, Any] = {}
    for name, text in pairs:
        param = declared(sig, name, undeclared)
        if param.secret:
            out[name] = (Secret(name=name, env=text[4:]) if text.startswith("env:")
                         else Secret(text, name=name))
        elif raw_types or name not in sig.parameters:
            out[name] = papermill_reading(text)
        else:
            out[name] = value = _convert(sig, param, text)
            theirs = papermill_reading(text)
            if notes is not None and (type(value) is not type(theirs) or value != theirs):
                notes.append(f"-p {name} {text!r} is read as {value!r} ({name!r} is declared "
                             f"{param.type}) where papermill injects {theirs!r}; "
                             "--raw-types reads -p values as papermill does")
    return out


def papermill_reading(text: str) -> Any:
    """What papermill's ``-p`` injects for ``text``: True, False, None, an int, a float
    (as Python's ``int()`` and ``float()`` read them), else the text itself."""
    special = {"True": True, "False": False, "None": None}
    if text in special:
        return special[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _convert(sig: Signature, param: Parameter, text: str) -> Any:
    if param.nullable and text in ("None", "null"):
        return None
    kind = param.type
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        if kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ValueError(text)
        if kind in ("list", "dict"):
            value = json.loads(text)
            if mismatch(param, value):
                raise ValueError(text)
            return value
    except ValueError:
        hint = " (as JSON)" if kind in ("list", "dict") else ""
        raise ParameterError(
            f"parameter {param.name!r} of {sig.notebook.name} expects {_article(kind)}"
            f"{hint}, got {text!r}", notebook=str(sig.notebook), parameter=param.name,
        ) from None
    return papermill_reading(text)


def _article(kind: str) -> str:
    return {"int": "an int", "any": "a value"}.get(kind, f"a {kind}")


def declared(sig: Signature, name: str, undeclared: str = "refuse") -> Parameter:
    """The declaration of ``name``; for an undeclared name, what ``undeclared`` says: an
    error, or a stand-in (untyped; secret when its name marks it so)."""
    param = sig.parameters.get(name)
    if param is not None:
        return param
    where = {"notebook": str(sig.notebook), "parameter": name}
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(f"parameter name {name!r} is not a Python name, so the injected "
                             f"cell of {sig.notebook.name} could not assign it; give the "
                             "name the notebook uses", **where)
    if undeclared not in UNDECLARED:
        raise ParameterError(f"undeclared must be one of {', '.join(UNDECLARED)}, not "
                             f"{undeclared!r}", **where)
    if undeclared == "refuse" and sig.cell is None:
        raise ParameterError(
            f"{sig.notebook.name} has no parameters cell, so it takes no parameters "
            f"(got {name!r}); tag the cell that assigns the defaults 'parameters' "
            "(JupyterLab: Property Inspector > Cell Tags)", **where)
    close = near_miss(name, list(sig.parameters))
    if undeclared == "refuse" or (undeclared == "near" and close):
        hint = f"; did you mean {close!r}?" if close else ""
        known = ", ".join(sig.parameters) or "none"
        message = (f"unknown parameter {name!r} for {sig.notebook.name}{hint} (it declares: "
                   f"{known})")
        if undeclared == "near":
            message += f"; pass --allow-undeclared to inject {name!r} anyway, as papermill would"
        raise ParameterError(message, **where)
    return Parameter(name=name, secret=is_secret_name(name))


def near_miss(name: str, names: list[str]) -> str | None:
    """The declared name that ``name`` is most likely a typo of, if any."""
    for known in names:
        if known.lower() == name.lower():
            return known
    close = difflib.get_close_matches(name, names, n=1, cutoff=NEAR_MISS)
    return close[0] if close else None


def validate(sig: Signature, given: dict[str, Any], *, check_env: bool = True,
             allow_literal_secrets: bool = True, undeclared: str = "refuse",
             raw_types: bool = False, quiet: Collection[str] = ()) -> Values:
    """Check ``given`` (Python values) against ``sig``; secrets are split off.

    Secret values may be str, :class:`~orbits_nb.Secret`, or a recorded reference
    ``{"$secret": name, "env": VAR}``. ``check_env`` requires referenced variables to
    be set now; ``allow_literal_secrets=False`` (schedules) demands references.
    ``undeclared`` is how names the notebook does not declare are taken (see the module
    docstring); ``raw_types`` turns a value that does not fit its declared type into a
    note instead of an error. Names in ``quiet`` are injected without a note.
    """
    values = Values()
    for name, value in given.items():
        param = declared(sig, name, "inject" if name in quiet else undeclared)
        if name not in sig.parameters and name not in quiet:
            values.undeclared[name] = _undeclared_note(sig, param)
            values.notes.append(values.undeclared[name])
        elif param.secret and not is_secret_call(param.default_source):
            values.notes.append(
                f"secret parameter {name!r} reaches the notebook as an orbits_nb.Secret "
                "(its .reveal() is the text), not as text in the injected cell")
        if param.secret:
            values.secrets[name] = _secret(sig, param, value, check_env, allow_literal_secrets)
            continue
        values.public[name] = _plain(sig, param, value, raw_types, values.notes)
    head = sig.parameters.get(HEADLESS)
    if head is not None and HEADLESS not in given and head.type in ("bool", "any"):
        values.public[HEADLESS] = True
        values.notes.append(f"{HEADLESS!r} is set to True, as the runner sets a declared "
                            f"{HEADLESS!r} parameter; papermill leaves its default")
    missing = [p.name for p in sig.parameters.values() if p.required and p.name not in given]
    if missing:
        raise ParameterError(
            f"{sig.notebook.name} needs a value for required parameter(s) "
            f"{', '.join(map(repr, missing))}; pass -p {missing[0]} VALUE",
            notebook=str(sig.notebook), parameter=missing[0])
    return values


def _undeclared_note(sig: Signature, param: Parameter) -> str:
    where = ("it has no cell tagged 'parameters', so the parameters are injected at the "
             "top" if sig.cell is None else "injected after its parameters cell")
    secret = (": its name marks it secret, so the notebook gets an orbits_nb.Secret (its "
              ".reveal() is the text), never the text itself" if param.secret else
              ", as papermill does (declare it to have it checked)")
    return (f"{param.name!r} is not declared by {sig.notebook.name} ({where}){secret}")


def _plain(sig: Signature, param: Parameter, value: Any, raw_types: bool,
           notes: list[str]) -> Any:
    name = param.name
    try:
        plain = check_json(value, f"parameter {name!r}")
    except InvalidArgument as err:
        raise ParameterError(str(err), notebook=str(sig.notebook), parameter=name) from None
    problem = mismatch(param, plain)
    if problem and raw_types:
        notes.append(f"parameter {name!r} of {sig.notebook.name} is declared {param.type}, "
                     f"but the value {problem}: injected as it is (--raw-types)")
    elif problem:
        raise ParameterError(
            f"parameter {name!r} of {sig.notebook.name} expects {_article(param.type)}, "
            f"but the value {problem}; --raw-types injects it as it is, as papermill does",
            notebook=str(sig.notebook), parameter=name)
    return plain


def _secret(sig: Signature, param: Parameter, value: Any, check_env: bool,
            allow_literal: bool) -> Secret:
    name = param.name
    unrecorded = ParameterError(
        f"parameter {name!r} is secret and its value was not recorded; pass it "
        f"again with -p {name} VALUE (or -p {name} env:VARIABLE)",
        notebook=str(sig.notebook), parameter=name)
    if isinstance(value, dict) and "$secret" in value:
        if not value.get("env"):
            raise unrecorded
        value = Secret(name=name, env=str(value["env"]))
    if isinstance(value, Secret):
        if value.env_var:
            secret = Secret(name=name, env=value.env_var)
        else:
            try:
                secret = Secret(value.reveal(), name=name)
            except InvalidArgument:  # read back from the store, without its value
                raise unrecorded from None
    elif isinstance(value, str):
        secret = Secret(value, name=name)
    else:
        raise ParameterError(f"secret parameter {name!r} needs a str or orbits_nb.Secret, "
                             f"got {type(value).__name__}", notebook=str(sig.notebook),
                             parameter=name)
    if secret.env_var is None and not allow_literal:
        raise ParameterError(
            f"a schedule cannot store the value of secret parameter {name!r}; pass "
            f"-p {name} env:VARIABLE so it is read from the environment at run time",
            notebook=str(sig.notebook), parameter=name)
    if check_env and secret.env_var is not None:
        try:
            secret.reveal()
        except InvalidArgument:
            raise ParameterError(
                f"secret parameter {name!r} reads the environment variable "
                f"{secret.env_var}, which is not set; export it and run again",
                notebook=str(sig.notebook), parameter=name) from None
    return secret
