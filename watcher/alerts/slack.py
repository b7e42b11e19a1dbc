"""Sending alerts to Slack: a bot (Web API, editable messages with buttons) or an incoming webhook.

Both are synchronous; the outbox runs them in a worker thread and owns retries,
so the slack-sdk clients get NO retry handlers (by default slack-sdk retries
connection errors itself, which would hide failures from our backoff and
double-send on a timeout). Every failure becomes a :class:`TransportError`
through :func:`slack_error`, which decides permanent vs transient and says what
to do about it.

Secrets: the bot token and the webhook URL (which *is* a credential) never
appear in our messages; the slack-sdk clients get a logger of their own at
INFO, because at DEBUG the webhook client logs the full URL.
"""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Mapping
from typing import Any, cast
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from watcher.alerts.model import Alert, SlackRef, TransportError
from watcher.alerts.slack_render import render_message, render_reply

log = logging.getLogger("watcher.alerts.slack")

_sdk_log = logging.getLogger("watcher.alerts.slack.sdk")
_sdk_log.setLevel(logging.INFO)  # slack-sdk checks logger.level (not the effective level) before DEBUG dumps


def _not_reraised(record: logging.LogRecord) -> bool:
    """Drop slack-sdk's "Failed to send a request to Slack API server: <urlopen error ...>".

    slack-sdk logs it and then raises the same error, which :func:`error_from_exception` turns into
    watcher's own words ("cannot reach Slack ..."), reported by the outbox, the doctor or the CLI.
    Left in, it reached users as a raw extra line (``watcher doctor`` with Slack unreachable, through
    Python's last-resort handler when no logging is set up), in English only and twice over.
    """
    return not record.getMessage().startswith("Failed to send a request to Slack API server")


_sdk_log.addFilter(_not_reraised)

_AUTH = "the bot token is invalid or revoked ({code}): check WATCHER_SLACK__TOKEN (or slack.token_file)"
_TOO_LONG = "Slack rejected the message blocks ({code}): the message is too long or malformed (a watcher bug)"
_CHANNEL = "Slack channel {channel} ({code}): invite the bot to the channel or give it chat:write.public"

PERMANENT: dict[str, str] = {
    "invalid_auth": _AUTH,
    "not_authed": "no bot token was sent (not_authed): set WATCHER_SLACK__TOKEN",
    "account_inactive": _AUTH,
    "token_revoked": _AUTH,
    "token_expired": "the bot token has expired (token_expired): issue a new one and set WATCHER_SLACK__TOKEN",
    "not_allowed_token_type": "wrong kind of token ({code}): use a bot token (xoxb-…) in WATCHER_SLACK__TOKEN",
    "channel_not_found": "Slack channel {channel} not found ({code}): use the channel ID (C…) and invite the bot",
    "not_in_channel": _CHANNEL,
    "is_archived": "Slack channel {channel} is archived ({code}): unarchive it or route alerts elsewhere",
    "missing_scope": "the Slack app lacks a scope ({code}{needed}): add it in the app settings and reinstall",
    "invalid_blocks": _TOO_LONG,
    "invalid_blocks_format": _TOO_LONG,
    "msg_blocks_too_long": _TOO_LONG,
    "msg_too_long": _TOO_LONG,
    "no_text": _TOO_LONG,
    "too_many_attachments": _TOO_LONG,
    "invalid_arguments": _TOO_LONG,
    "invalid_arg_name": _TOO_LONG,
    "cant_update_message": "cannot edit that Slack message ({code}): it was not posted by this bot",
    "message_not_found": "the Slack message to edit is gone ({code}): a new one will be posted",
    "edit_window_closed": "the Slack message can no longer be edited ({code})",
    "restricted_action": "a workspace admin restricts posting in {channel} ({code}): ask them to allow the bot",
    "restricted_action_read_only_channel": "Slack channel {channel} is read-only ({code}): route alerts elsewhere",
    "posting_to_channel_denied": "the bot may not post in {channel} ({code}): ask a workspace admin",
    "ekm_access_denied": "workspace admins have suspended posting ({code})",
    "no_permission": "the bot lacks permission for {channel} ({code}): invite it to the channel",
    "access_denied": "Slack denied access ({code}): check the app's installation and scopes",
    "team_not_found": "the Slack workspace was not found ({code}): check the token",
    "user_not_in_channel": "that user is not in {channel} ({code})",
    "unknown_method": "Slack does not know this API method ({code}): check slack.base_url",
    "method_deprecated": "Slack retired this API method ({code}): update watcher",
    "deprecated_endpoint": "Slack retired this API method ({code}): update watcher",
    # incoming webhooks answer with a status and a short text body
    "no_service": "the Slack webhook was removed or disabled ({code}): create a new one and set slack.webhook_url",
    "invalid_token": "the Slack webhook was revoked ({code}): create a new one and set slack.webhook_url",
    "channel_is_archived": "the webhook's channel is archived ({code}): create a new webhook",
    "action_prohibited": "a workspace admin blocks this webhook ({code}): ask them, or use a bot token",
    "invalid_payload": _TOO_LONG,
    "user_not_found": "the webhook's target user does not exist ({code}): create a new webhook",
}
"""Codes that will fail again however often we retry, with what the operator should do."""

TRANSIENT = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "rollup_error",
    "update_failed",
}
RATE_LIMITED = {"ratelimited", "rate_limited", "message_limit_exceeded"}


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for k, v in (headers or {}).items():
        if str(k).lower() == "retry-after":
            v = v[0] if isinstance(v, list | tuple) and v else v
            try:
                return max(0.0, float(v))
            except (TypeError, ValueError):
                return None
    return None


def slack_error(
    status: int | None,
    code: str | None,
    headers: Mapping[str, Any] | None = None,
    *,
    channel: str | None = None,
    needed: str | None = None,
    webhook: bool = False,
) -> TransportError:
    """The one place that maps a failed Slack answer (HTTP status + error code) to a TransportError.

    Order matters: a 429 is always a rate limit, whatever the body; a known code
    decides next; then the HTTP status (5xx transient; for webhooks, other 4xx
    are permanent since Slack's webhook errors are all about the hook itself);
    an unknown Web API code is treated as transient so the outbox keeps trying
    for ``alerts.retry_for`` and then falls back, rather than dropping at once.
    """
    code = (code or "").strip()
    short = code if len(code) <= 60 and code.replace("_", "").isalnum() else ""
    where = channel or "(unknown channel)"
    if status == 429 or code in RATE_LIMITED:
        ra = _retry_after(headers)
        msg = f"Slack rate limit ({short or status}): retrying" + (
            f" after {ra:g}s" if ra is not None else ""
        )
        return TransportError(msg, retry_after=ra)
    if webhook and status == 404 and not short:
        short = "no_service"
    if short in PERMANENT:
        extra = f", needs {needed}" if needed else ""
        return TransportError(
            PERMANENT[short].format(code=short, channel=where, needed=extra), permanent=True
        )
    label = f"{short}, HTTP {status}" if short else f"HTTP {status}"
    if short in TRANSIENT or (status is not None and status >= 500):
        return TransportError(f"Slack is having trouble ({label}): will retry")
    if webhook and status is not None and 400 <= status < 500 and status != 408:
        return TransportError(
            f"the Slack webhook refused the message ({label}): check slack.webhook_url",
            permanent=True,
        )
    return TransportError(f"Slack error ({label}): will retry")


def error_from_exception(
    exc: BaseException, *, channel: str | None = None, webhook: bool = False
) -> TransportError:
    """Adapt what slack-sdk raises (API errors, urllib/socket errors) to :func:`slack_error`."""
    if isinstance(exc, SlackApiError):
        resp = exc.response
        data = resp.data if isinstance(getattr(resp, "data", None), dict) else {}
        code = data.get("error")
        if isinstance(code, str) and code.startswith("Received a response in a non-JSON format"):
            code = None  # slack-sdk puts the HTML error page here: keep it out of messages
        return slack_error(
            getattr(resp, "status_code", None),
            code if isinstance(code, str) else None,
            getattr(resp, "headers", None),
            channel=channel,
            needed=data.get("needed") if isinstance(data.get("needed"), str) else None,
            webhook=webhook,
        )
    if isinstance(exc, TimeoutError | socket.timeout) or (
        isinstance(exc, URLError) and isinstance(exc.reason, TimeoutError | socket.timeout)
    ):
        return TransportError("Slack did not answer in time (timeout): will retry")
    if isinstance(exc, URLError | OSError | http.client.HTTPException):
        reason = exc.reason if isinstance(exc, URLError) else exc
        return TransportError(f"cannot reach Slack ({type(reason).__name__}): will retry")
    if isinstance(exc, SlackClientError):  # e.g. an invalid URL: configuration, not the network
        return TransportError(
            f"Slack client error ({type(exc).__name__}): check slack.base_url / slack.webhook_url",
            permanent=True,
        )
    return TransportError(f"unexpected Slack client failure ({type(exc).__name__})")


METADATA_EVENT = "watcher_incident"


def incident_metadata(alert: Alert) -> dict[str, Any]:
    """Slack message metadata naming the incident a top-level alert message is about."""
    return {
        "event_type": METADATA_EVENT,
        "event_payload": {"incident_id": alert.incident_id, "vendor": alert.vendor},
    }


def sdk_timeout(seconds: float) -> int:
    """``seconds`` for slack_sdk's ``timeout``, which is annotated ``int`` but handed to urllib as is:
    fractions work and tests rely on them (half a second to a hung server), so no rounding."""
    return cast(int, seconds)


class SlackBot:
    """Posts with a bot token: one message per incident, edited in place, updates in its thread."""

    def __init__(self, token: str, base_url: str = "https://slack.com/api/", timeout: float = 10):
        self.client = WebClient(
            token=token, base_url=base_url, timeout=sdk_timeout(timeout), retry_handlers=[], logger=_sdk_log
        )

    def __repr__(self) -> str:  # never the token
        return f"SlackBot(base_url={self.client.base_url!r})"

    def _call(self, channel: str | None, fn, /, **kwargs):  # positional-only: kwargs carry channel=
        try:
            return fn(**kwargs)
        except Exception as e:
            err = error_from_exception(e, channel=channel)
            log.debug("Slack %s failed: %s", getattr(fn, "__name__", "call"), err.message)
            raise err from None

    def post(self, channel: str, alert: Alert) -> SlackRef:
        text, blocks = render_message(alert)
        return self.post_message(channel, text, blocks, metadata=incident_metadata(alert))

    def post_message(
        self, channel: str, text: str, blocks: list[dict[str, Any]], *, metadata: dict[str, Any] | None = None
    ) -> SlackRef:
        """Post a new message; ``metadata`` ties it to its incident (so a post lost in a crash is found
        again); a message rendered elsewhere (the weekly report) has none."""
        extra = {"metadata": metadata} if metadata is not None else {}
        resp = self._call(
            channel,
            self.client.chat_postMessage,
            channel=channel,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )
        return SlackRef(resp.get("channel") or channel, str(resp["ts"]))

    def find_posted(self, channel: str, alert: Alert, pages: int = 5) -> SlackRef | None:
        """The message this bot already posted for the alert's incident, among the channel's latest, if any.

        After a crash or a lost answer in the middle of a post, Slack may hold the
        message while watcher never learnt its ts: the message metadata carries the
        incident (see :func:`incident_metadata`), so the sender adopts that message
        instead of posting a second one that nobody would ever edit. Needs the
        ``channels:history`` (and for private channels ``groups:history``) scope.
        Reads at most ``pages`` pages of 200 messages, newest first (no time bound:
        watcher's clock and Slack's need not agree).
        """
        want = incident_metadata(alert)["event_payload"]
        cursor = None
        for _page in range(pages):
            resp = self._call(
                channel,
                self.client.conversations_history,
                channel=channel,
                limit=200,
                include_all_metadata=True,
                cursor=cursor,
            )
            for m in resp.get("messages") or []:
                meta = m.get("metadata") if isinstance(m, dict) else None
                if not isinstance(meta, dict) or meta.get("event_type") != METADATA_EVENT:
                    continue
                payload = meta.get("event_payload") or {}
                if all(str(payload.get(k)) == str(v) for k, v in want.items()) and not m.get("thread_ts"):
                    return SlackRef(channel, str(m["ts"]))
            cursor = ((resp.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                return None
        return None

    def update(self, ref: SlackRef, alert: Alert) -> None:
        text, blocks = render_message(alert)
        self._call(
            ref.channel, self.client.chat_update, channel=ref.channel, ts=ref.ts, text=text, blocks=blocks
        )

    def reply(self, ref: SlackRef, alert: Alert) -> SlackRef:
        resp = self._call(
            ref.channel,
            self.client.chat_postMessage,
            channel=ref.channel,
            thread_ts=ref.ts,
            text=render_reply(alert),
            unfurl_links=False,
            unfurl_media=False,
        )
        return SlackRef(resp.get("channel") or ref.channel, str(resp["ts"]))

    def check(self) -> str:
        """``auth.test``: "bot <name> in workspace <team>", to show that the token works."""
        resp = self._call(None, self.client.auth_test)
        return f"bot {resp.get('user') or '?'} in workspace {resp.get('team') or '?'}"


class SlackWebhook:
    """Posts through an incoming webhook: the lesser mode.

    A webhook cannot edit or thread what it posted and cannot carry working
    buttons, so every change of an incident (update, acknowledge, resolve)
    arrives as a NEW message in the channel; use a bot token for one tidy
    message per incident.
    """

    def __init__(self, url: str, timeout: float = 10):
        self.client = WebhookClient(url, timeout=sdk_timeout(timeout), retry_handlers=[], logger=_sdk_log)

    def __repr__(self) -> str:  # the URL is a secret
        return "SlackWebhook(url=…)"

    def post(self, alert: Alert) -> None:
        text, blocks = render_message(alert)
        self.post_message(text, [b for b in blocks if b.get("type") != "actions"])  # clicks would go nowhere

    def post_message(self, text: str, blocks: list[dict[str, Any]]) -> None:
        """Post a rendered message to the webhook's channel; raises :class:`TransportError`."""
        try:
            resp = self.client.send(text=text, blocks=blocks, unfurl_links=False, unfurl_media=False)
        except Exception as e:
            raise error_from_exception(e, webhook=True) from None
        if resp.status_code != 200:
            body = (resp.body or "").strip()
            raise slack_error(resp.status_code, body.split()[0] if body else None, resp.headers, webhook=True)
