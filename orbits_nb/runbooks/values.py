"""Parameter values: typed from the command line, validated, secrets kept apart.

Values are checked against a runbook's :class:`~orbits_nb.runbooks.parameters.Signature`
before any kernel starts. Secret parameters become :class:`orbits_nb.Secret` objects:
``-p name env:VARIABLE`` references a variable (the only form a schedule may store),
any other value is kept in memory for this run only.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import MASK, Secret, check_json
from orbits_nb.runbooks.errors import ParameterError
from orbits_nb.runbooks.parameters import HEADLESS, Parameter, Signature, mismatch


@dataclass
class Values:
    """Validated parameter values: plain JSON ones, and secrets kept apart."""

    public: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)

    def masked(self) -> dict[str, Any]:
        """For display and for the workflow runs' metadata: secrets are ``****``."""
        return {**self.public, **dict.fromkeys(self.secrets, MASK)}

    def recorded(self) -> dict[str, Any]:
        """For the store: secrets as references (``{"$secret": name, "env": VAR}``)."""
        return {**self.public, **{k: s.to_json() for k, s in self.secrets.items()}}

    def literal_secrets(self) -> list[str]:
        return [name for name, s in self.secrets.items() if s.env_var is None]


def from_cli(sig: Signature, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``-p name value`` strings into typed values, by each parameter's type."""
    out: dict[str, Any] = {}
    for name, text in pairs:
        param = _known(sig, name)
        if param.secret:
            out[name] = (Secret(name=name, env=text[4:]) if text.startswith("env:")
                         else Secret(text, name=name))
        else:
            out[name] = _convert(sig, param, text)
    return out


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
    return _guess(text)


def _guess(text: str) -> Any:
    """An untyped value, read as papermill does: True/False/None, numbers, JSON, str."""
    special = {"True": True, "False": False, "None": None}
    if text in special:
        return special[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def _article(kind: str) -> str:
    return {"int": "an int", "any": "a value"}.get(kind, f"a {kind}")


def _known(sig: Signature, name: str) -> Parameter:
    if sig.cell is None:
        raise ParameterError(
            f"{sig.notebook.name} has no parameters cell, so it takes no parameters "
            f"(got {name!r}); tag the cell that assigns the defaults 'parameters' "
            "(JupyterLab: Property Inspector > Cell Tags)", notebook=str(sig.notebook),
            parameter=name)
    param = sig.parameters.get(name)
    if param is None:
        close = difflib.get_close_matches(name, list(sig.parameters), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sig.parameters) or "none"
        raise ParameterError(
            f"unknown parameter {name!r} for {sig.notebook.name}{hint} (it declares: "
            f"{known})", notebook=str(sig.notebook), parameter=name)
    return param


def validate(sig: Signature, given: dict[str, Any], *, check_env: bool = True,
             allow_literal_secrets: bool = True) -> Values:
    """Check ``given`` (Python values) against ``sig``; secrets are split off.

    Secret values may be str, :class:`~orbits_nb.Secret`, or a recorded reference
    ``{"$secret": name, "env": VAR}``. ``check_env`` requires referenced variables to
    be set now; ``allow_literal_secrets=False`` (schedules) demands references.
    """
    values = Values()
    for name, value in given.items():
        param = _known(sig, name)
        if param.secret:
            values.secrets[name] = _secret(sig, param, value, check_env, allow_literal_secrets)
            continue
        try:
            plain = check_json(value, f"parameter {name!r}")
        except InvalidArgument as err:
            raise ParameterError(str(err), notebook=str(sig.notebook), parameter=name) from None
        problem = mismatch(param, plain)
        if problem:
            raise ParameterError(
                f"parameter {name!r} of {sig.notebook.name} expects {_article(param.type)}, "
                f"but the value {problem}", notebook=str(sig.notebook), parameter=name)
        values.public[name] = plain
    head = sig.parameters.get(HEADLESS)
    if head is not None and HEADLESS not in given and head.type in ("bool", "any"):
        values.public[HEADLESS] = True
    missing = [p.name for p in sig.parameters.values() if p.required and p.name not in given]
    if missing:
        raise ParameterError(
            f"{sig.notebook.name} needs a value for required parameter(s) "
            f"{', '.join(map(repr, missing))}; pass -p {missing[0]} VALUE",
            notebook=str(sig.notebook), parameter=missing[0])
    return values


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
