"""The Slack channel: one message per incident, edited in place, updates in its thread.

With a bot token (:class:`~watcher.alerts.slack.SlackBot`) the first alert about
an incident is posted and its ``ts`` kept in the store; later ones edit that
message and reply in its thread. With an incoming webhook only
(:class:`~watcher.alerts.slack.SlackWebhook`), every alert is a new message in
the webhook's channel. A test alert and the weekly report are new messages
either way (:data:`~watcher.alerts.channels.base.STANDALONE_ACTIONS`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from watcher.alerts.channels.base import (
    FAIL,
    OK,
    STANDALONE_ACTIONS,
    WARN,
    Channel,
    Check,
    Outlet,
    Transports,
)
from watcher.alerts.model import Alert, SlackRef, TransportError

if TYPE_CHECKING:
    from watcher.config import RouteSettings, Settings
    from watcher.store.outbox import Notification

log = logging.getLogger("watcher.alerts.deliver")

NOT_CONFIGURED = "Slack is not configured: set WATCHER_SLACK__TOKEN (or slack.webhook_url)"
WEBHOOK_TARGET = "webhook"
"""The report's target when only an incoming webhook is set: it posts to its own channel, once."""


class SlackChannel(Channel):
    name = "slack"
    labels = {"en": "Slack", "fr": "Slack"}
    fallback_to = "email"
    edits_in_place = True

    def report_targets(self, settings: Settings, transports: Transports) -> list[str]:
        channels = list(settings.report.slack_channels)
        if channels and transports.slack_bot is None and transports.slack_webhook is not None:
            return [WEBHOOK_TARGET]
        return channels

    def fallback_targets(self, settings: Settings, route: RouteSettings | None) -> list[str]:
        fallback = settings.slack.fallback_channel
        return (self.route_targets(route) if route else []) or ([fallback] if fallback else [])

    def open(self, settings: Settings, transports: Transports) -> None:
        from watcher.config import read_secret

        s = settings.slack
        token = read_secret(s.token, s.token_file, "slack.token")
        if token:
            from watcher.alerts.slack import SlackBot

            transports.slack_bot = SlackBot(token, base_url=s.base_url, timeout=s.timeout)
        elif s.webhook_url is not None and s.webhook_url.get_secret_value():
            from watcher.alerts.slack import SlackWebhook

            transports.slack_webhook = SlackWebhook(s.webhook_url.get_secret_value(), timeout=s.timeout)

    def configured(self, settings: Settings) -> bool:
        s = settings.slack
        return bool(
            (s.token is not None and s.token.get_secret_value())
            or s.token_file
            or (s.webhook_url is not None and s.webhook_url.get_secret_value())
        )

    def setup_advice(self) -> tuple[str, str]:
        return (
            "sends to Slack but no Slack token or webhook is set: those alerts would be dropped",
            "export WATCHER_SLACK__TOKEN=xoxb-... (or slack.token_file); see README, 'Slack and email setup'",
        )

    def checks(self, settings: Settings, transports: Transports, targets: list[str]) -> list[Check]:
        """The token by ``auth.test``, then each routed channel by ``conversations.info``; a webhook
        cannot be checked without posting, which the doctor never does."""
        bot = transports.slack_bot
        if bot is None:
            if transports.slack_webhook is None:
                return []
            return [
                Check(
                    WARN,
                    "slack webhook",
                    "set; a webhook cannot be checked without posting",
                    "`watcher test-alert` posts a sample through it",
                )
            ]
        try:
            who = bot.check()
        except TransportError as e:
            # only a refusal says the token is wrong: a network failure or a Slack outage says nothing
            # about it, and advising to copy it again sent admins after the wrong problem
            if e.permanent:
                return [
                    Check(
                        FAIL,
                        "slack token",
                        f"auth.test refused: {e.message}",
                        "copy the Bot User OAuth Token (xoxb-...) from OAuth & Permissions into WATCHER_SLACK__TOKEN",
                    )
                ]
            host = urlsplit(settings.slack.base_url).netloc or "slack.com"
            return [
                Check(
                    FAIL,
                    "slack token",
                    f"not checked: {e.message.removesuffix(': will retry')} from this machine",
                    f"let this machine (or container) reach {host}: check DNS, the firewall or HTTPS_PROXY, "
                    "or slack.base_url; status.slack.com says whether Slack itself is down",
                )
            ]
        out = [Check(OK, "slack token", f"auth.test: {who} ({settings.slack.base_url})")]
        return out + [_conversation_check(bot, channel) for channel in targets]

    def problem(self, transports: Transports) -> str | None:
        if transports.slack_bot is None and transports.slack_webhook is None:
            return NOT_CONFIGURED
        return None

    def timeout(self, settings: Settings) -> float:
        return float(settings.slack.timeout)

    def render(self, alert: Alert) -> tuple[str, list[dict[str, Any]]]:
        """(fallback text, Block Kit blocks) for ``chat.postMessage``."""
        if alert.message is not None:
            return alert.message["slack"]["text"], alert.message["slack"]["blocks"]
        from watcher.alerts.slack_render import render_message

        return render_message(alert)

    async def send(self, out: Outlet, n: Notification) -> dict[str, Any]:
        t = out.transports
        if n.alert.message is not None:  # rendered by its author (the weekly report)
            text, blocks = self.render(n.alert)
            if t.slack_bot is not None and n.target != WEBHOOK_TARGET:
                ref = await out.in_thread(self.name, t.slack_bot.post_message, n.target, text, blocks)
                return {"channel": ref.channel, "ts": ref.ts}
            if t.slack_webhook is not None:
                await out.in_thread(self.name, t.slack_webhook.post_message, text, blocks)
                return {"webhook": True}
            raise TransportError(NOT_CONFIGURED, permanent=True)
        if t.slack_bot is not None:
            if n.action in STANDALONE_ACTIONS:
                ref = await out.in_thread(self.name, t.slack_bot.post, n.target, n.alert)
                return {"channel": ref.channel, "ts": ref.ts}
            return await self._thread(out, t.slack_bot, n)
        if t.slack_webhook is not None:
            await out.in_thread(self.name, t.slack_webhook.post, n.alert)
            return {"webhook": True}
        raise TransportError(NOT_CONFIGURED, permanent=True)

    async def _thread(self, out: Outlet, bot: Any, n: Notification) -> dict[str, Any]:
        """An incident's alert: edit its message and reply in its thread, or post it first."""
        ts = out.store.slack_thread(n.incident_id, n.target)
        if ts is not None:
            ref = SlackRef(n.target, ts)
            try:
                await out.in_thread(self.name, bot.update, ref, n.alert)
            except TransportError as e:
                if not (e.permanent and "message_not_found" in e.message):
                    raise
                ts = None  # the message was deleted: start a new one
            else:
                reply = await out.in_thread(self.name, bot.reply, ref, n.alert)
                return {"channel": ref.channel, "ts": ref.ts, "reply_ts": getattr(reply, "ts", None)}
        if ts is None and n.attempts > 1:
            found = await self._adopt(out, bot, n)
            if found is not None:
                return found
        posted = await out.in_thread(self.name, bot.post, n.target, n.alert)
        # posted: from here on a database error must not count as a failed send (a second post)
        await out.record(
            n,
            "its Slack thread",
            lambda: out.store.save_slack_thread(n.incident_id, n.target, posted.ts, out.clock()),
        )
        return {"channel": posted.channel, "ts": posted.ts}

    async def _adopt(self, out: Outlet, bot: Any, n: Notification) -> dict[str, Any] | None:
        """After a try that may have posted (a crash in flight, a lost answer): adopt what Slack holds.

        Looks for this incident's message (by its metadata) among the channel's latest;
        when found, it becomes the incident's thread and is edited to show the
        incident as it is now, instead of a second message that would show the old
        state forever. A lookup refused for good (no history scope...) is logged and
        watcher posts; a transient failure is a failed try, retried as any other.
        """
        find = getattr(bot, "find_posted", None)
        if find is None:  # a bot stand-in without history access
            return None
        try:
            ref = await out.in_thread(self.name, find, n.target, n.alert)
        except TransportError as e:
            if not e.permanent:
                raise  # Slack is unreachable: a post would fail too; try both again later
            log.warning(
                "notification #%s: cannot look for a message already posted in %s (%s); posting, which may "
                "duplicate the alert (add the channels:history and groups:history scopes)",
                n.id,
                n.target,
                e.message,
            )
            return None
        if ref is None:
            return None
        await out.record(
            n,
            "its Slack thread",
            lambda: out.store.save_slack_thread(n.incident_id, n.target, ref.ts, out.clock()),
        )
        log.warning(
            "notification #%s: incident #%s was already posted in %s (ts %s) by a try that did not finish; "
            "adopting that message instead of posting again",
            n.id,
            n.incident_id,
            n.target,
            ref.ts,
        )
        await out.in_thread(self.name, bot.update, ref, n.alert)
        return {"channel": ref.channel, "ts": ref.ts, "adopted": True}


def _conversation_check(bot: Any, channel: str) -> Check:
    """One routed channel, by ``conversations.info``: it exists, is not archived, the bot can post there."""
    what = f"slack channel {channel}"
    try:
        resp = bot.client.conversations_info(channel=channel)
    except Exception as e:  # slack-sdk raises on ok=false: read the code
        data = getattr(getattr(e, "response", None), "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        if code == "missing_scope":
            return Check(
                WARN,
                what,
                "cannot be checked: the app lacks the channels:read and groups:read scopes",
                "add them (slack/manifest.yaml lists them) and reinstall the app, or run `watcher test-alert`",
            )
        if code == "channel_not_found":
            return Check(
                FAIL,
                what,
                "not found, or a private channel the bot is not in",
                f"check the ID (channel menu > Copy link: the C... part) or type /invite @watcher in {channel}",
            )
        if code:
            return Check(FAIL, what, f"conversations.info answered {code}", "see README, 'Slack and email setup'")
        from watcher.alerts.slack import error_from_exception

        err = error_from_exception(e, channel=channel)
        return Check(FAIL, what, err.message, "check the network and slack.base_url")
    info = resp.get("channel") or {}
    name = f"#{info.get('name')}" if info.get("name") else channel
    if info.get("is_archived"):
        return Check(FAIL, what, f"{name} is archived", "unarchive it or route to another channel")
    if info.get("is_member"):
        return Check(OK, what, f"{name} exists and the bot is a member")
    if info.get("is_private"):
        return Check(FAIL, what, f"{name} is private and the bot is not in it", f"type /invite @watcher in {name}")
    return Check(
        OK, what, f"{name} exists; the bot posts there without joining (chat:write.public)"
    )
