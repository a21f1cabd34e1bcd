"""Helpers of the AWS resources: an account's context, and an action driven to its end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from orbits_nb.aws.session import AWS, current, current_aws
from orbits_nb.core.action import IN_PROGRESS, Action

#: Seconds between two polls of an AWS operation driven by a resource.
POLL_SECONDS = 2.0


def context(account_id: str | None, role_name: str, region: str | None,
            profile: str | None, cache: dict[str, Any]) -> AWS:
    """The AWS context of ``account_id`` (an assumed role), else the caller's own."""
    if account_id is None:
        return current(profile=profile, region=region)
    executor = cache.get("executor")
    if executor is None:
        from orbits_nb.aws.executor import AccountExecutor

        executor = cache["executor"] = AccountExecutor(
            account_id=account_id, role_name=role_name, region=region, profile=profile)
    return executor.context()


@contextlib.contextmanager
def acting_in(aws: AWS) -> Iterator[None]:
    """Actions called here use ``aws`` (as under an AccountExecutor)."""
    token = current_aws.set(aws)
    try:
        yield
    finally:
        current_aws.reset(token)


def drive(action: Action, aws: AWS, *, poll: float = POLL_SECONDS,
          timeout: float = 7200.0) -> Any:
    """Call ``action.main()`` then ``watch()`` until done, in ``aws`` (blocking)."""
    action.bag = {}
    deadline = time.monotonic() + timeout
    with acting_in(aws):
        result = action.main()
        while result is IN_PROGRESS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(action).__name__} did not finish in {timeout}s")
            time.sleep(poll)
            result = action.watch()
    return result
