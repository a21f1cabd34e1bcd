"""Child side of :class:`~orbits_nb.aws.emulator.Emulator`: moto's server, AWS-like.

``python -m orbits_nb.aws._moto_server [--taken-email E ...] [--plain]`` runs moto's
own :class:`moto.server.ThreadedMotoServer` on 127.0.0.1 (port 0: the kernel picks a
free one), prints ``{"port": N, "pid": P}`` on stdout once it listens, and stops on
SIGTERM, SIGINT or when its stdin closes (the parent died).

It runs in a process of its own because moto's backends are process-wide state, and
the two patches below change moto's classes: in the user's kernel they would leak
into anything else that uses moto there (``mock_aws`` in tests, for instance).

Unless ``--plain`` is given, it makes moto behave like AWS in the two places the
runbooks depend on and moto offers no setting for (moto 5.x; checked at start):

- Organizations: a new account is a request first. It stays ``IN_PROGRESS`` (not in
  ``ListAccounts`` yet) as long as moto's state manager says, under the model name
  ``organizations::account`` (``immediate`` by default, like moto; the emulator's
  ``account_delay`` sets ``{"progression": "time", "seconds": ...}`` through
  ``/moto-api/state-manager/set-transition``, ``manual`` progresses per describe
  call). An e-mail already used by an account, or given with ``--taken-email``, ends
  ``FAILED`` with ``EMAIL_ALREADY_EXISTS`` (moto accepts duplicates).
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
import re
import signal
import sys
import threading
import time
from typing import Any

from orbits_nb._optional import needs
from orbits_nb.aws.emulator import ACCOUNT_MODEL, FEATURE, UnsupportedMoto
from orbits_nb.core.errors import MissingDependency

#: The moto releases these patches were written and tested against (pyproject pins it).
SUPPORTED = ((5, 1, 9), (5, 3, 0))


# -- Organizations -------------------------------------------------------------------------
class _Failed:
    """A creation request AWS refused (moto has no such thing)."""

    def __init__(self, request_id: str, name: str, reason: str) -> None:
        self.create_account_status_id = request_id
        self.name, self.reason, self.at = name, reason, time.time()

    @property
    def create_account_status(self) -> dict[str, Any]:
        return {"CreateAccountStatus": {
            "Id": self.create_account_status_id, "AccountName": self.name,
            "State": "FAILED", "FailureReason": self.reason,
            "RequestedTimestamp": self.at, "CompletedTimestamp": self.at}}


def _creating(account: Any) -> bool:
    """Whether the account's creation is still in flight (per moto's state manager)."""
    creation = account.__dict__.get("_orbits_creation")
    return creation is not None and creation.status != "SUCCEEDED"


def patch_organizations(taken: set[str]) -> None:
    """Slow account creation paced by moto's state manager; refused duplicate e-mails."""
    from moto.moto_api import state_manager
    from moto.moto_api._internal.managed_state_model import ManagedState
    from moto.organizations import models, utils

    backend: Any = models.OrganizationsBackend
    account_cls: Any = models.FakeAccount
    original_status = account_cls.create_account_status.fget
    original = {name: getattr(backend, name) for name in (
        "create_account", "describe_create_account_status", "list_create_account_status")}
    state_manager.register_default_transition(ACCOUNT_MODEL, {"progression": "immediate"})

    def create_account_status(account: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_status(account)
        if _creating(account):  # no account id nor completion time before it exists
            status = result["CreateAccountStatus"]
            status["State"] = "IN_PROGRESS"
            status.pop("AccountId", None)
            status.pop("CompletedTimestamp", None)
        return result

    def get_accounts(self: Any) -> list[Any]:
        # Every API reads the organization's accounts here: a request whose creation
        # finished joins them, so all calls agree on what exists.
        accounts: list[Any] = self.__dict__["_orbits_accounts"]
        pending: list[Any] = self.__dict__["_orbits_pending"]
        for account in [a for a in pending if not _creating(a)]:
            pending.remove(account)
            accounts.append(account)
        return accounts

    def set_accounts(self: Any, value: list[Any]) -> None:  # moto's reset
        self.__dict__.update(_orbits_accounts=value, _orbits_pending=[], _orbits_failed=[])

    def create_account(self: Any, **kwargs: Any) -> dict[str, Any]:
        email = str(kwargs["Email"]).lower()
        known = {a.email.lower() for a in [*self.accounts, *self._orbits_pending]}
        if self.org is not None and (email in taken or email in known):
            failed = _Failed(utils.make_random_create_account_status_id(),
                             str(kwargs["AccountName"]), "EMAIL_ALREADY_EXISTS")
            self._orbits_failed.append(failed)
            return failed.create_account_status
        original["create_account"](self, **kwargs)
        account = self._orbits_accounts.pop()
        account._orbits_creation = ManagedState(ACCOUNT_MODEL, [("IN_PROGRESS", "SUCCEEDED")])
        self._orbits_pending.append(account)
        return dict(account.create_account_status)

    def describe_create_account_status(self: Any, **kwargs: Any) -> dict[str, Any]:
        wanted = kwargs["CreateAccountRequestId"]
        for item in [*self._orbits_pending, *self._orbits_failed]:
            if item.create_account_status_id == wanted:
                if isinstance(item, account_cls):
                    item._orbits_creation.advance()  # "manual" progression counts these
                return dict(item.create_account_status)
        result: dict[str, Any] = original["describe_create_account_status"](self, **kwargs)
        return result

    def list_create_account_status(self: Any, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = original["list_create_account_status"](self, **kwargs)
        states = kwargs.get("States") or ["IN_PROGRESS", "SUCCEEDED", "FAILED"]
        for item in [*self._orbits_pending, *self._orbits_failed]:
            entry = item.create_account_status["CreateAccountStatus"]
            if entry["State"] in states:
                result["CreateAccountStatuses"].append(entry)
        return result

    account_cls.create_account_status = property(create_account_status)
    backend.accounts = property(get_accounts, set_accounts)
    backend.create_account = create_account
    backend.describe_create_account_status = describe_create_account_status
    backend.list_create_account_status = list_create_account_status


# -- CloudFormation ------------------------------------------------------------------------
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
    """Failed resources roll the stack back instead of failing the API call."""
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
        except Exception as err:  # which resource failed: moto forgets it
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


# -- start-up --------------------------------------------------------------------------------
#: What the patches touch, checked before patching so a changed moto fails clearly.
_RELIES_ON = {
    "moto.organizations.models": ("OrganizationsBackend.create_account",
                                  "OrganizationsBackend.describe_create_account_status",
                                  "OrganizationsBackend.list_create_account_status",
                                  "FakeAccount.create_account_status"),
    "moto.organizations.utils": ("make_random_create_account_status_id",),
    "moto.moto_api._internal.managed_state_model": ("ManagedState",),
    "moto.cloudformation.parsing": ("parse_and_create_resource",),
    "moto.cloudformation.models": ("Stack.create_resources", "Stack.update",
                                   "Stack._add_stack_event", "Event"),
}


def _release(version: str) -> tuple[int, ...]:
    """``5.2.5`` -> ``(5, 2, 5)``; a suffix such as ``.dev1`` or ``rc1`` is ignored."""
    parts = []
    for part in version.split(".")[:3]:
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts + [0] * (3 - len(parts)))


def pin() -> str:
    """The supported range as pip writes it: ``moto>=5.1.9,<5.3``."""
    low, high = SUPPORTED
    upper = ".".join(map(str, high[:2] if high[2] == 0 else high))
    return f"moto>={'.'.join(map(str, low))},<{upper}"


def check_moto() -> None:
    """Refuse a moto release the patches were not made for, saying what to do."""
    import importlib

    import moto

    version = _release(moto.__version__)
    low, high = SUPPORTED
    missing = []
    for module_name, names in _RELIES_ON.items():
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            missing.append(module_name)
            continue
        for dotted in names:
            target = module
            for part in dotted.split("."):
                target = getattr(target, part, None)
            if target is None:
                missing.append(f"{module_name}.{dotted}")
    if missing or not low <= version < high:
        raise UnsupportedMoto(
            f"moto {moto.__version__} is not a release the emulator's AWS-like behaviours "
            f"support ({pin()}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + "): pip install 'orbits_nb[demo]' installs a supported one, or pass "
            "Emulator(plain=True) for moto as shipped")


def _serve(port: int) -> None:
    with needs("demo", FEATURE, "moto"):
        from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    bound = server.get_host_and_port()[1]
    os.environ["MOTO_PORT"] = str(bound)  # moto builds some URLs (Lambda, custom resources)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def parent_gone() -> None:
        sys.stdin.read()  # EOF once the parent's end of the pipe closes
        stop.set()

    threading.Thread(target=parent_gone, daemon=True).start()
    print(json.dumps({"port": bound, "pid": os.getpid()}), flush=True)
    stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orbits_nb.aws._moto_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--taken-email", action="append", default=[])
    parser.add_argument("--plain", action="store_true", help="moto as shipped, unpatched")
    args = parser.parse_args(argv)
    try:
        if not args.plain:
            with needs("demo", FEATURE, "moto"):
                import moto  # noqa: F401
            check_moto()
            patch_organizations({e.lower() for e in args.taken_email})
            patch_cloudformation()
        _serve(args.port)
    except (MissingDependency, UnsupportedMoto) as err:
        # The parent turns this line into the same error, with the same message.
        print(json.dumps({"error": type(err).__name__, "message": str(err),
                          "fields": err.fields}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
