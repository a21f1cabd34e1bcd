"""The base class of actions that call AWS."""

from __future__ import annotations

import re
from typing import Any

from orbits_nb.aws.session import AWS, current
from orbits_nb.core.action import Action
from orbits_nb.core.errors import InvalidArgument

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class AWSAction(Action):
    """An action with ``self.aws``: the AWS context it runs in.

    Under an :class:`~orbits_nb.aws.AccountExecutor` that is the target account's
    assumed role; otherwise the standard AWS configuration, narrowed by the optional
    ``profile`` and ``region`` arguments.
    """

    def __init__(self, **args: Any) -> None:
        region = args.get("region")
        if region is not None and (not isinstance(region, str) or not _REGION.match(region)):
            raise InvalidArgument(f"{type(self).__name__}: region {region!r} is not an AWS "
                                  "region name such as 'eu-west-1'", argument="region")
        profile = args.get("profile")
        if profile is not None and (not isinstance(profile, str) or not profile):
            raise InvalidArgument(f"{type(self).__name__}: profile must be a non-empty "
                                  f"string, got {profile!r}", argument="profile")
        super().__init__(**{k: v for k, v in args.items() if v is not None})

    @property
    def aws(self) -> AWS:
        return current(profile=self.args.get("profile"), region=self.args.get("region"))
