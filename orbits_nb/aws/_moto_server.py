"""Child side of :class:`~orbits_nb.aws.emulator.Emulator`: moto's server, AWS-like.

``python -m orbits_nb.aws._moto_server [--account-delay S] [--taken-email E ...]``
serves moto's WSGI application on 127.0.0.1 (port 0 by default: the kernel picks a
free one) and prints ``{"port": N}`` on stdout once it listens.

Unless ``--plain`` is given, it first makes moto behave like AWS where the runbooks
depend on it and moto does not (moto 5.x):

- Organizations: ``CreateAccount`` is ``IN_PROGRESS`` for ``--account-delay`` seconds
  before ``SUCCEEDED`` (moto succeeds at once), and ends ``FAILED`` with
  ``EMAIL_ALREADY_EXISTS`` for an e-mail already used by an account or listed with
  ``--taken-email`` (moto accepts duplicates and never fails).
- CloudFormation: a resource that cannot be created makes the stack end
  ``ROLLBACK_COMPLETE`` with a ``CREATE_FAILED`` event naming the resource and the
  reason (moto fails the ``CreateStack`` call itself and leaves the stack
  ``CREATE_IN_PROGRESS`` forever); a failed update ends ``UPDATE_ROLLBACK_COMPLETE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any


class _ResourceFailed(Exception):
    def __init__(self, logical_id: str, resource_type: str, reason: str) -> None:
        super().__init__(reason)
        self.logical_id, self.resource_type, self.reason = logical_id, resource_type, reason


def _reason(err: BaseException) -> str:
    for attr in ("message", "description"):
        value = getattr(err, attr, None)
        if isinstance(value, str) and value:
            return value
    return f"{type(err).__name__}: {err}"


def _as_method(bound: Any) -> Any:
    """A plain function (so it binds to the backend) calling ``bound(backend, ...)``."""

    def method(backend: Any, *args: Any, **kwargs: Any) -> Any:
        return bound(backend, *args, **kwargs)

    return method


class _Organizations:
    """The Organizations behaviours moto lacks: slow creation, refused e-mails."""

    def __init__(self, delay: float, taken: set[str]) -> None:
        from moto.organizations import exceptions, models

        self.delay, self.taken, self.not_found = delay, taken, exceptions.AccountNotFoundException
        backend: Any = models.OrganizationsBackend
        account_cls: Any = models.FakeAccount
        self.status_property: Any = account_cls.create_account_status
        self.original = {name: getattr(backend, name) for name in (
            "create_account", "list_create_account_status", "list_accounts")}
        account_cls.create_account_status = property(self.status)
        backend.create_account = _as_method(self.create_account)
        backend.describe_create_account_status = _as_method(self.describe)
        backend.list_create_account_status = _as_method(self.list_status)
        backend.list_accounts = _as_method(self.list_accounts)

    def status(self, account: Any) -> dict[str, Any]:
        ready_at = getattr(account, "_orbits_ready_at", 0.0)
        if ready_at > time.time():
            return {"CreateAccountStatus": {
                "Id": account.create_account_status_id, "AccountName": account.name,
                "State": "IN_PROGRESS", "RequestedTimestamp": ready_at - self.delay}}
        result: dict[str, Any] = self.status_property.fget(account)
        return result

    @staticmethod
    def promote(backend: Any) -> list[Any]:
        """Move accounts whose creation finished into the organization; the others."""
        pending = getattr(backend, "_orbits_pending", [])
        for account in [a for a in pending if a._orbits_ready_at <= time.time()]:
            pending.remove(account)
            backend.accounts.append(account)
        return [*pending, *getattr(backend, "_orbits_failed", [])]

    def create_account(self, backend: Any, **kwargs: Any) -> dict[str, Any]:
        email = str(kwargs["Email"]).lower()
        pending = getattr(backend, "_orbits_pending", [])
        known = [a.email.lower() for a in [*backend.accounts, *pending]]
        if backend.org is not None and (email in self.taken or email in known):
            failed = _Failed(str(kwargs["AccountName"]), "EMAIL_ALREADY_EXISTS")
            backend.__dict__.setdefault("_orbits_failed", []).append(failed)
            return failed.create_account_status
        result: dict[str, Any] = self.original["create_account"](backend, **kwargs)
        if self.delay > 0:
            account = backend.accounts.pop()
            account._orbits_ready_at = time.time() + self.delay
            backend.__dict__.setdefault("_orbits_pending", []).append(account)
            return dict(account.create_account_status)
        return result

    def describe(self, backend: Any, **kwargs: Any) -> dict[str, Any]:
        wanted = kwargs["CreateAccountRequestId"]
        others = self.promote(backend)  # first: it moves ready accounts into the list
        for item in [*backend.accounts, *others]:
            if item.create_account_status_id == wanted:
                return dict(item.create_account_status)
        raise self.not_found

    def list_status(self, backend: Any, **kwargs: Any) -> dict[str, Any]:
        others = self.promote(backend)
        result: dict[str, Any] = self.original["list_create_account_status"](backend, **kwargs)
        states = kwargs.get("States") or ["IN_PROGRESS", "SUCCEEDED", "FAILED"]
        for item in others:
            entry = item.create_account_status["CreateAccountStatus"]
            if entry["State"] in states:
                result["CreateAccountStatuses"].append(entry)
        return result

    def list_accounts(self, backend: Any, *args: Any, **kwargs: Any) -> Any:
        self.promote(backend)
        return self.original["list_accounts"](backend, *args, **kwargs)


class _Failed:
    """A creation request AWS refused (moto has no such thing)."""

    def __init__(self, name: str, reason: str) -> None:
        from moto.organizations import utils

        self.create_account_status_id = utils.make_random_create_account_status_id()
        self.name, self.reason, self.at = name, reason, time.time()

    @property
    def create_account_status(self) -> dict[str, Any]:
        return {"CreateAccountStatus": {
            "Id": self.create_account_status_id, "AccountName": self.name,
            "State": "FAILED", "FailureReason": self.reason,
            "RequestedTimestamp": self.at, "CompletedTimestamp": self.at}}


class _NoOutputs(dict):  # type: ignore[type-arg]
    """The output map of a stack that was rolled back."""

    exports: list[Any] = []


def _as_failure(stack: Any, err: BaseException) -> _ResourceFailed:
    if isinstance(err, _ResourceFailed):
        return err
    return _ResourceFailed(stack.name, "AWS::CloudFormation::Stack", _reason(err))


def _resource_event(stack: Any, failed: _ResourceFailed, status: str) -> None:
    from moto.cloudformation.models import Event

    stack.events.append(Event(
        stack_id=stack.stack_id, stack_name=stack.name,
        logical_resource_id=failed.logical_id, physical_resource_id="",
        resource_type=failed.resource_type, resource_status=status,
        resource_status_reason=failed.reason, resource_properties=None))


def _roll_back(stack: Any, failed: _ResourceFailed) -> None:
    """What AWS does after a failed creation: events, deletion, ROLLBACK_COMPLETE."""
    _resource_event(stack, failed, "CREATE_FAILED")
    stack.status = "ROLLBACK_IN_PROGRESS"
    stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=(
        f"The following resource(s) failed to create: [{failed.logical_id}]. "
        "Rollback requested by user."))
    with contextlib.suppress(Exception):  # best effort, as AWS skips what is gone
        stack.resource_map.delete()
    # A rolled-back stack has no outputs (moto would evaluate them lazily and fail
    # again on every DescribeStacks).
    stack.output_map = _NoOutputs()
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")


def patch_cloudformation() -> None:
    from moto.cloudformation import models, parsing

    original_parse = parsing.parse_and_create_resource
    stack_cls: Any = models.Stack
    original_create = stack_cls.create_resources
    original_update = stack_cls.update

    def parse_and_create_resource(logical_id: str, resource_json: dict[str, Any],
                                  *args: Any, **kwargs: Any) -> Any:
        try:
            return original_parse(logical_id, resource_json, *args, **kwargs)
        except _ResourceFailed:
            raise
        except Exception as err:
            raise _ResourceFailed(logical_id, str(resource_json.get("Type")),
                                  _reason(err)) from err

    def create_resources(self: Any) -> None:
        try:
            original_create(self)
        except Exception as err:
            _roll_back(self, _as_failure(self, err))

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original_update(self, *args, **kwargs)
        except Exception as err:
            _resource_event(self, _as_failure(self, err), "UPDATE_FAILED")
            self.status = "UPDATE_ROLLBACK_COMPLETE"
            self._add_stack_event("UPDATE_ROLLBACK_COMPLETE")

    parsing.parse_and_create_resource = parse_and_create_resource
    stack_cls.create_resources = create_resources
    stack_cls.update = update


def serve(port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", port, app, threaded=True,
                         request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.port)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"port": server.port, "pid": os.getpid()}), flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orbits_nb.aws._moto_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-delay", type=float, default=0.0)
    parser.add_argument("--taken-email", action="append", default=[])
    parser.add_argument("--plain", action="store_true", help="moto as shipped, unpatched")
    args = parser.parse_args(argv)
    if not args.plain:
        _Organizations(args.account_delay, {e.lower() for e in args.taken_email})
        patch_cloudformation()
    serve(args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
