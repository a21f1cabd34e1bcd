"""A local AWS emulator: moto's server in a subprocess on 127.0.0.1.

>>> with Emulator() as aws:                      # doctest: +SKIP
...     with aws.activated():                    # AWS_ENDPOINT_URL + fake credentials
...         aws.create_organization()
...         DeployBackend(client="acme").run()

The server listens on loopback only, uses fake credentials, and stops with the
``with`` block (or :meth:`stop`), or by itself when this process dies. See
:mod:`orbits_nb.aws._moto_server` for where it behaves more like AWS than moto does
out of the box, and :meth:`Emulator.set_transition` for moto's own state manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from orbits_nb._optional import check_installed, needs
from orbits_nb.core.errors import MissingDependency, OrbitsError

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: Variables that would send boto3 to real AWS or a real profile instead.
SHADOWING = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
             "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
#: moto's state-manager model that paces account creation (see ``_moto_server``).
ACCOUNT_MODEL = "organizations::account"
FEATURE = "the local AWS emulator (orbits_nb.aws.Emulator, orbits-nb demo)"
#: What the server process imports: moto's server extra, and boto3 for the helpers.
SERVER_MODULES = ("moto", "flask", "flask_cors", "boto3")


class EmulatorError(OrbitsError):
    """The local AWS emulator could not start (moto missing, or it crashed)."""


class UnsupportedMoto(EmulatorError):
    """The installed moto is not a release the emulator's patches were made for."""


class Emulator:
    """moto's server, started as a real process and stopped afterwards.

    ``account_delay`` keeps new accounts ``IN_PROGRESS`` that many seconds (as AWS
    does for minutes; moto's state manager paces it, see :meth:`set_transition`);
    ``taken_emails`` are e-mails AWS would refuse with ``EMAIL_ALREADY_EXISTS``;
    ``plain=True`` runs moto as shipped.
    """

    def __init__(self, *, region: str = "us-east-1", account_delay: float = 0.0,
                 taken_emails: tuple[str, ...] | list[str] = (), plain: bool = False,
                 log_path: str | Path | None = None, start_timeout: float = 60.0) -> None:
        self.region = region
        self.account_delay = account_delay
        self.taken_emails = list(taken_emails)
        self.plain = plain
        self.log_path = Path(log_path) if log_path else None
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> Emulator:
        """Start the server and wait until it listens; return ``self``."""
        if self._proc is not None:
            return self
        check_installed(SERVER_MODULES, "demo", FEATURE)
        command = [sys.executable, "-m", "orbits_nb.aws._moto_server"]
        for email in self.taken_emails:
            command += ["--taken-email", email]
        if self.plain:
            command.append("--plain")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        env = {**os.environ, **FAKE_CREDENTIALS}
        # stdin stays open: the server stops by itself when it closes (we died).
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log or subprocess.DEVNULL, env=env)
        try:
            self.port = self._read_port(self._proc)
            if self.account_delay > 0 and not self.plain:
                self.set_transition(ACCOUNT_MODEL, {"progression": "time",
                                                    "seconds": self.account_delay})
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self, proc: subprocess.Popen[bytes]) -> int:
        assert proc.stdout is not None
        lines: queue.Queue[bytes] = queue.Queue()
        stdout = proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self.start_timeout)
        except queue.Empty:
            raise EmulatorError(f"moto's server did not start within {self.start_timeout}s"
                                + self._log_hint()) from None
        if not line:
            raise EmulatorError(f"moto's server exited with code {proc.wait()} while "
                                "starting" + self._log_hint())
        reply = json.loads(line)
        if "error" in reply:  # the server's own words: a missing package, an old moto
            kind = MissingDependency if reply["error"] == "MissingDependency" else (
                UnsupportedMoto if reply["error"] == "UnsupportedMoto" else EmulatorError)
            raise kind(reply["message"], **reply.get("fields", {}))
        return int(reply["port"])

    def _log_hint(self) -> str:
        return f"; see {self.log_path}" if self.log_path else "; pass log_path= to see why"

    def stop(self) -> None:
        """Stop the server (its state is lost)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- configuration for clients ----------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise EmulatorError("the emulator is not started; call start() first")
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str | None]:
        """Variables pointing boto3 at the emulator (``None``: to unset)."""
        env: dict[str, str | None] = {
            "AWS_ENDPOINT_URL": self.endpoint, **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        env.update(dict.fromkeys(SHADOWING))
        return env

    @contextlib.contextmanager
    def activated(self) -> Iterator[Emulator]:
        """Point this process (and children it starts) at the emulator, then restore."""
        saved = {key: os.environ.get(key) for key in self.environ()}
        apply_environ(self.environ())
        try:
            yield self
        finally:
            apply_environ(saved)

    # -- set-up helpers ------------------------------------------------------------------------
    def create_organization(self) -> str:
        """Make the caller an organization's management account (idempotent)."""
        org = self._client("organizations")
        try:
            return str(org.describe_organization()["Organization"]["Id"])
        except org.exceptions.AWSOrganizationsNotInUseException:
            return str(org.create_organization(FeatureSet="ALL")["Organization"]["Id"])

    def accounts(self) -> list[dict[str, Any]]:
        """The organization's accounts (``list_accounts``), management account included."""
        org = self._client("organizations")
        found: list[dict[str, Any]] = []
        for page in org.get_paginator("list_accounts").paginate():
            found += page["Accounts"]
        return found

    def reset(self) -> None:
        """Forget every resource (moto's ``/moto-api/reset``; transitions are kept)."""
        self._moto_api("POST", "reset")

    def set_transition(self, model: str, transition: dict[str, Any]) -> None:
        """Set how a moto model changes state, through moto's state manager API.

        ``emulator.set_transition("organizations::account", {"progression": "manual",
        "times": 3})`` makes a new account ``SUCCEEDED`` at the third
        ``DescribeCreateAccountStatus`` call about it (``IN_PROGRESS`` before);
        ``{"progression": "time", "seconds": S}`` after S seconds;
        ``{"progression": "immediate"}`` is moto's default. moto's documentation on
        state transitions lists its own models.
        """
        self._moto_api("POST", "state-manager/set-transition",
                       {"model_name": model, "transition": transition})

    def unset_transition(self, model: str) -> None:
        """Back to the model's default transition (moto's state manager API)."""
        self._moto_api("POST", "state-manager/unset-transition", {"model_name": model})

    def get_transition(self, model: str) -> dict[str, Any]:
        """The transition moto's state manager applies to ``model``."""
        # moto reads this query string without decoding it: pass the name as is.
        reply: dict[str, Any] = self._moto_api(
            "GET", f"state-manager/get-transition?model_name={model}")
        return reply

    def _moto_api(self, method: str, path: str, payload: Any = None) -> Any:
        import requests

        reply = requests.request(method, f"{self.endpoint}/moto-api/{path}", json=payload,
                                 timeout=30)
        if reply.status_code >= 400:
            raise EmulatorError(f"moto's /moto-api/{path} answered HTTP {reply.status_code}: "
                                f"{reply.text[:200]}")
        return reply.json() if reply.content else None

    def _client(self, service: str) -> Any:
        with needs("demo", FEATURE):
            import boto3

        return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                             region_name=self.region).client(service,
                                                              endpoint_url=self.endpoint)


def apply_environ(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
