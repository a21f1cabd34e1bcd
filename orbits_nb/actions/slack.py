"""``SendSlackAlert``: a message to a Slack-compatible incoming webhook."""

from __future__ import annotations

from typing import Any

from orbits_nb.actions._http import (
    MAX_RETRY_AFTER,
    TransientHTTPError,
    honouring_retry_after,
    request,
)
from orbits_nb.core.action import Action, Retry
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.masking import mask
from orbits_nb.core.serde import Secret, dumps, loads, mask_json

#: Longer messages are cut: Slack truncates them anyway, and tracebacks get long.
MAX_TEXT = 3000
__all__ = ["MAX_RETRY_AFTER", "MAX_TEXT", "SendSlackAlert"]


class SendSlackAlert(Action):
    """Post ``text`` to an incoming webhook whose URL is a :class:`~orbits_nb.Secret`.

    Slack, Mattermost, Rocket.Chat and Teams' Slack-compatible endpoints accept the
    ``{"text": ...}`` payload (plus optional ``blocks``, ``username``, ``icon_emoji``,
    ``channel``). 408, 429 and 5xx answers, timeouts and network errors are retried
    with backoff (a ``Retry-After`` is honoured, up to ``MAX_RETRY_AFTER`` seconds);
    other errors fail at once. The URL never reaches the store, the logs or an error
    message, and every known secret value is masked in what is posted
    (``text=str(step_failed)`` is safe).

    >>> SendSlackAlert(webhook=Secret.from_env("SLACK_WEBHOOK_URL"), text="deployed")
    SendSlackAlert(webhook='****', text='deployed')
    """

    retry = Retry(attempts=5, delay=1.0, backoff=2.0, max_delay=30.0,
                  on=(TransientHTTPError,))
    timeout = 300.0

    def __init__(self, *, webhook: Secret, text: str, blocks: list[Any] | None = None,
                 username: str | None = None, icon_emoji: str | None = None,
                 channel: str | None = None) -> None:
        if not isinstance(webhook, Secret):
            raise InvalidArgument(
                "SendSlackAlert: webhook must be an orbits_nb.Secret (e.g. "
                "Secret.from_env('SLACK_WEBHOOK_URL')) so the URL is never stored, got "
                f"{type(webhook).__name__}", argument="webhook")
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(f"SendSlackAlert: text must be a non-empty string, got "
                                  f"{text!r}", argument="text")
        if blocks is not None and not isinstance(blocks, list):
            raise InvalidArgument("SendSlackAlert: blocks must be a list of Block Kit "
                                  "blocks", argument="blocks")
        # Masked before it is cut, so no secret is left half visible at the cut.
        text = mask(text)
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 1] + "…"
        args: dict[str, Any] = {"webhook": webhook, "text": text}
        args.update({k: v for k, v in (("blocks", blocks), ("username", username),
                                       ("icon_emoji", icon_emoji), ("channel", channel))
                     if v is not None})
        super().__init__(**args)

    def payload(self) -> dict[str, Any]:
        """The JSON body posted to the webhook (known secret values masked)."""
        body = {k: v for k, v in self.args.items() if k != "webhook"}
        masked: dict[str, Any] = loads(mask_json(dumps(body)))
        return masked

    def main(self) -> Any:
        url = self.args["webhook"].reveal()
        label = f"webhook {self.args['webhook'].name!r}"
        with honouring_retry_after(self):
            reply = request("POST", url, label=label, payload=self.payload(), timeout=30.0)
        self.log.info("posted to %s (HTTP %s)", label, reply.status)
        return {"delivered": True, "status": reply.status, "attempt": self.attempt,
                "text": self.args["text"]}
