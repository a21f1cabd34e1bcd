"""The kernel side of a headless run: what a runbook can ask about the run it is in.

The runner passes everything through environment variables, never through the
notebook source, so secrets stay out of the executed notebook::

    import orbits_nb as ob
    if ob.runbooks.is_headless():
        ...                              # e.g. no widgets, static output only
    ob.runbooks.context().notebook_run_id
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orbits_nb.core import masking
from orbits_nb.core.serde import Secret

ENV_HEADLESS = "ORBITS_NB_HEADLESS"
ENV_NOTEBOOK = "ORBITS_NB_NOTEBOOK"
ENV_NOTEBOOK_FILE = "ORBITS_NB_NOTEBOOK_FILE"
ENV_RUN = "ORBITS_NB_NOTEBOOK_RUN"
ENV_PARAMETERS = "ORBITS_NB_PARAMETERS"
ENV_SECRETS = "ORBITS_NB_SECRETS"
ENV_SECRET_PREFIX = "ORBITS_NB_SECRET_"
ENV_SCHEDULE = "ORBITS_NB_SCHEDULE"
ENV_SCHEDULED_FOR = "ORBITS_NB_SCHEDULED_FOR"
ENV_OUTPUT = "ORBITS_NB_OUTPUT_PATH"


@dataclass(frozen=True)
class Context:
    """Where this code runs: interactive (``headless`` False) or a headless runbook run."""

    headless: bool = False
    notebook_run_id: str | None = None
    notebook: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    schedule_id: str | None = None
    scheduled_for: datetime | None = None
    output_path: str | None = None


def is_headless() -> bool:
    """True inside a notebook executed by ``orbits-nb run`` (or the scheduler)."""
    return os.environ.get(ENV_HEADLESS) == "1"


def context() -> Context:
    """The headless run's context; an interactive session gets ``Context()``."""
    if not is_headless():
        return Context()
    due = os.environ.get(ENV_SCHEDULED_FOR)
    return Context(
        headless=True,
        notebook_run_id=os.environ.get(ENV_RUN),
        notebook=os.environ.get(ENV_NOTEBOOK),
        parameters=json.loads(os.environ.get(ENV_PARAMETERS) or "{}"),
        schedule_id=os.environ.get(ENV_SCHEDULE) or None,
        scheduled_for=datetime.fromtimestamp(float(due), UTC) if due else None,
        output_path=os.environ.get(ENV_OUTPUT),
    )


def secret_env_var(name: str) -> str:
    """The variable that carries the literal value of secret parameter ``name``."""
    return ENV_SECRET_PREFIX + name.upper()


def bootstrap() -> dict[str, Secret]:
    """The secret parameters as :class:`Secret` objects (run by the injected cell).

    Their values, and those the secret parameters not given get from their defaults
    (read from the runbook's parameters cell), are masked in this kernel from now
    on, so a secret printed inside a step is masked in the stored logs too.
    """
    names: dict[str, str] = json.loads(os.environ.get(ENV_SECRETS) or "{}")
    secrets = {name: Secret(name=name, env=variable) for name, variable in names.items()}
    for secret in secrets.values():
        with contextlib.suppress(Exception):  # an unset variable fails where it is used
            secret.reveal()
    # The local file: a runbook read from a URL runs from a copy the runner made.
    notebook = os.environ.get(ENV_NOTEBOOK_FILE) or os.environ.get(ENV_NOTEBOOK)
    if notebook:
        from orbits_nb.runbooks.parameters import inspect, secret_default

        with contextlib.suppress(Exception):  # the runner checked the notebook already
            masking.remember_all(value for param in inspect(notebook).parameters.values()
                                 if (value := secret_default(param)) is not None)
    return secrets


def bootstrap_source() -> str:
    """The code of the cell the runner adds after the injected parameters."""
    return ("# orbits-nb: secret parameters arrive as orbits_nb.Secret objects read from the "
            "environment,\n# never written in this notebook.\n"
            "from orbits_nb.runbooks.kernel import bootstrap as _orbits_nb_bootstrap\n\n"
            "globals().update(_orbits_nb_bootstrap())\n")
