"""Delivering the outbox: claim, send, record; retry with backoff; fall back to the other channel.

Database work stays on the event loop thread; only the network call of a
transport runs in a worker thread. Each target gets its notifications in order
(the outbox hands out at most one per target at a time), so a Slack outage
delays messages but never reorders or drops them.

Retry policy: exponential backoff with jitter (5 s, 10 s, 20 s … capped at
5 min), never sooner than the server's own ``Retry-After``; a permanent error
(bad token, unknown channel, login refused) stops at once and is reported; a
notification still failing after ``alerts.retry_for`` dies. When one channel has
been failing for ``alerts.fallback_after`` (or fails permanently), the same alert
is also queued on the other channel: email when Slack fails, Slack when email
fails.

What was sent is always recorded, however long the database refuses writes (a full
disk, a read-only file): the sender waits and tries again (:meth:`Deliverer._record`)
rather than leave the row claimed for the life of the process, which would hold back
every later message of its incident to that target, or forget the Slack thread, which
would make the next update a second message instead of an edit. While it waits, nothing
else is sent: nothing could be recorded either.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watcher.alerts.model import Alert, SlackRef, TransportError
from watcher.config import Settings, read_secret
from watcher.store.base import StoreError
from watcher.store.outbox import Notification

log = logging.getLogger("watcher.alerts.deliver")

BACKOFF_BASE = 5.0
BACKOFF_MAX = 300.0
RECORD_RETRY_FIRST = 0.5
RECORD_RETRY_MAX = 5.0
"""Seconds between tries to record an outcome the database refused (doubling from the first)."""


def backoff(
    attempts: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next try after ``attempts`` failed ones."""
    delay = min(BACKOFF_BASE * 2 ** max(0, attempts - 1), BACKOFF_MAX) * (0.8 + 0.4 * rand())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass
class Transports:
    """The configured senders; None where a channel is not set up."""

    slack_bot: object | None = None
    slack_webhook: object | None = None
    mailer: object | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Transports:
        t = cls()
        s = settings.slack
        token = read_secret(s.token, s.token_file, "slack.token")
        if token:
            from watcher.alerts.slack import SlackBot

            t.slack_bot = SlackBot(token, base_url=s.base_url, timeout=s.timeout)
        elif s.webhook_url is not None and s.webhook_url.get_secret_value():
            from watcher.alerts.slack import SlackWebhook

            t.slack_webhook = SlackWebhook(s.webhook_url.get_secret_value(), timeout=s.timeout)
        e = settings.email
        if e.host and e.sender:
            from watcher.alerts.email import SmtpMailer

            t.mailer = SmtpMailer(
                e.host,
                e.port,
                username=e.username,
                password=read_secret(e.password, e.password_file, "email.password"),
                starttls=e.starttls,
                ssl=e.ssl,
                timeout=e.timeout,
                sender=e.sender,
            )
        return t


class Deliverer:
    def __init__(
        self,
        settings: Settings,
        store,
        transports: Transports,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.settings = settings
        self.store = store
        self.transports = transports
        self.clock = clock
        self.wake = asyncio.Event()
        self.may_send: Callable[[], bool] = lambda: True
        """False on a cluster follower: only the leader sends (see :mod:`watcher.store.leader`)."""
        self.sent = 0
        self.failed = 0

    def recover(self) -> int:
        """At start: rows a crash left claimed go back to pending (sent again: at most one duplicate)."""
        n = self.store.recover_inflight()
        if n:
            log.warning("%d notification(s) were being sent when watcher last stopped; sending them again", n)
        return n

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                if self.may_send():
                    await self.deliver_due()
            except Exception:  # the sender must outlive any single bad notification
                log.exception("delivery loop error")
            nxt = self.store.next_due_at() if self.may_send() else None
            wait = 5.0 if self.may_send() else 1.0
            if nxt is not None:
                wait = min(wait, max(0.05, (nxt - self.clock()).total_seconds()))
            self.wake.clear()
            stop_task = asyncio.ensure_future(stopping.wait())
            wake_task = asyncio.ensure_future(self.wake.wait())
            await asyncio.wait({stop_task, wake_task}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for t in (stop_task, wake_task):
                t.cancel()

    async def deliver_due(self) -> int:
        done = 0
        while True:
            batch = self.store.due_notifications(self.clock(), limit=20)
            if not batch:
                return done
            progressed = False
            for n in batch:
                if not self.may_send():
                    return done  # leadership lost: the new leader takes it from here
                if not self.store.claim(n.id, self.clock()):
                    continue  # another worker has it
                progressed = True
                await self._deliver(n)
                done += 1
            if not progressed:
                return done

    async def _record(self, n: Notification, what: str, write: Callable[[], object]) -> None:
        """Run ``write`` (a store write about ``n``) until the database takes it.

        Only for outcomes that already happened: a message that went out, a failure to
        schedule again. Database errors are retried, with one log line when they start and
        one when they end; the wait ends with the write, or with the task cancelled at
        shutdown (the row stays claimed and is sent again at the next start: at most one
        duplicate, as after a crash).
        """
        delay = RECORD_RETRY_FIRST
        since: float | None = None
        while True:
            try:
                write()
            except StoreError as e:
                if since is None:
                    since = time.monotonic()
                    log.error(
                        "notification #%s: cannot record %s (%s); trying again until the database takes it, "
                        "nothing else is sent meanwhile",
                        n.id,
                        what,
                        e,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX)
                continue
            if since is not None:
                log.warning(
                    "notification #%s: %s recorded after %.0fs of database errors",
                    n.id,
                    what,
                    time.monotonic() - since,
                )
            return

    async def _deliver(self, n: Notification) -> None:
        try:
            ref = await self._send(n)
        except TransportError as e:
            await self._failed(n, e)
            return
        except Exception as e:  # a transport bug is a failed send, not a dead sender
            log.exception("notification #%s: unexpected error", n.id)
            await self._failed(n, TransportError(f"unexpected error: {e!r}"))
            return
        await self._record(n, "its delivery", lambda: self.store.mark_delivered(n.id, self.clock(), ref))
        self.sent += 1
        log.info(
            "notification #%s delivered: incident #%s %s to %s %s",
            n.id,
            n.incident_id,
            n.action,
            n.channel,
            n.target,
        )

    async def _failed(self, n: Notification, e: TransportError) -> None:
        now = self.clock()
        self.failed += 1
        first = n.first_error_at or now
        too_old = (now - n.created_at).total_seconds() > self.settings.alerts.retry_for
        if e.permanent or too_old:
            why = e.message if e.permanent else f"gave up after {n.attempts} tries: {e.message}"
            await self._record(n, "that it failed for good", lambda: self.store.mark_dead(n.id, now, why))
            log.error("notification #%s to %s %s failed for good: %s", n.id, n.channel, n.target, why)
            await self._record(n, "its fallback", lambda: self._fallback(n, why))
            return
        delay = backoff(n.attempts, e.retry_after)
        not_before = now + timedelta(seconds=delay)
        await self._record(n, "its retry", lambda: self.store.mark_retry(n.id, now, not_before, e.message))
        log.warning(
            "notification #%s to %s %s failed (try %d), retrying in %.0fs: %s",
            n.id,
            n.channel,
            n.target,
            n.attempts,
            delay,
            e.message,
        )
        if (now - first).total_seconds() >= self.settings.alerts.fallback_after:
            await self._record(n, "its fallback", lambda: self._fallback(n, e.message))

    def _fallback(self, n: Notification, why: str) -> None:
        if n.fallback_sent or n.fallback_of is not None:
            return
        targets: list[tuple[str, str]] = []
        route = next((r for r in self.settings.routes if r.name == n.route), None)
        if n.channel in ("slack", "apprise"):
            emails = (route.emails if route else []) or self.settings.email.fallback_to
            targets = [("email", e) for e in emails] if self.transports.mailer else []
        elif n.channel == "email" and (self.transports.slack_bot or self.transports.slack_webhook):
            fallback = self.settings.slack.fallback_channel
            channels = (route.slack_channels if route else []) or ([fallback] if fallback else [])
            targets = [("slack", c) for c in channels]
        if not targets:
            log.error("notification #%s: no fallback channel configured for route %s", n.id, n.route)
            return
        already = {(c, t) for c, t, _ in self.store.alerted_targets(n.incident_id)}
        targets = [t for t in targets if t not in already]
        if not targets:  # the other channel gets this incident's alerts anyway: a copy would be a duplicate
            self.store.mark_fallback_sent(n.id)
            log.warning("notification #%s: %s keeps failing (%s); the route's other channel has it", n.id, n.channel, why)
            return
        now = self.clock()
        for channel, target in targets:
            self.store.enqueue(
                incident_id=n.incident_id,
                action=n.action,
                channel=channel,
                target=target,
                route=n.route,
                alert=n.alert,
                now=now,
                fallback_of=n.id,
            )
        self.store.mark_fallback_sent(n.id)
        log.warning(
            "notification #%s: %s keeps failing (%s); sent by %s instead",
            n.id,
            n.channel,
            why,
            ", ".join(c for c, _ in targets),
        )

    # -- channels --------------------------------------------------------------------------

    async def _send(self, n: Notification) -> dict:
        if n.channel == "slack":
            return await self._slack(n)
        if n.channel == "email":
            return await self._email(n)
        if n.channel == "apprise":
            return await self._apprise(n)
        raise TransportError(f"unknown channel {n.channel!r}", permanent=True)

    async def _slack(self, n: Notification) -> dict:
        t = self.transports
        if t.slack_bot is not None:
            bot = t.slack_bot
            ts = self.store.slack_thread(n.incident_id, n.target)
            if ts is not None:
                ref = SlackRef(n.target, ts)
                try:
                    await asyncio.to_thread(bot.update, ref, n.alert)
                except TransportError as e:
                    if not (e.permanent and "message_not_found" in e.message):
                        raise
                    ts = None  # the message was deleted: start a new one
                else:
                    reply = await asyncio.to_thread(bot.reply, ref, n.alert)
                    return {"channel": ref.channel, "ts": ref.ts, "reply_ts": getattr(reply, "ts", None)}
            ref = await asyncio.to_thread(bot.post, n.target, n.alert)
            # posted: from here on a database error must not count as a failed send (a second post)
            await self._record(
                n,
                "its Slack thread",
                lambda: self.store.save_slack_thread(n.incident_id, n.target, ref.ts, self.clock()),
            )
            return {"channel": ref.channel, "ts": ref.ts}
        if t.slack_webhook is not None:
            await asyncio.to_thread(t.slack_webhook.post, n.alert)
            return {"webhook": True}
        raise TransportError(
            "Slack is not configured: set WATCHER_SLACK__TOKEN (or slack.webhook_url)", permanent=True
        )

    async def _email(self, n: Notification) -> dict:
        mailer = self.transports.mailer
        if mailer is None:
            raise TransportError("email is not configured: set email.host and email.sender", permanent=True)
        thread = self.store.email_thread(n.incident_id, n.target)
        seq = thread[1] + 1 if thread else 0
        delivery = await asyncio.to_thread(mailer.send, n.alert, [n.target], seq)
        ref = dict(getattr(delivery, "ref", {}) or {})
        root = thread[0] if thread else ref.get("message_id", "")
        await self._record(
            n, "its email thread", lambda: self.store.save_email_thread(n.incident_id, n.target, root, seq)
        )
        return ref

    async def _apprise(self, n: Notification) -> dict:
        title, body = apprise_text(n.alert)

        def send() -> bool:
            import apprise

            ap = apprise.Apprise()
            if not ap.add(n.target):
                raise TransportError("invalid Apprise URL (check its scheme and tokens)", permanent=True)
            return bool(ap.notify(title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN))

        if not await asyncio.to_thread(send):
            raise TransportError("the Apprise service did not accept the notification")
        return {"apprise": True}


def apprise_text(alert: Alert) -> tuple[str, str]:
    """Title and Markdown body for Apprise channels (Teams, Discord, Telegram, PagerDuty, webhooks)."""
    from watcher.alerts.playbook import neutralise

    state = (
        "resolved"
        if alert.state == "resolved"
        else (f"acknowledged by {alert.acknowledged_by}" if alert.acknowledged_by else "open")
    )
    title = f"{alert.vendor_name} {alert.kind}: {neutralise(alert.title)} ({state})"
    lines = [f"**{neutralise(alert.title)}** — {alert.kind}, vendor status {alert.status}"]
    if alert.event_text:
        lines.append(neutralise(alert.event_text))
    if alert.latest_update:
        lines.append("> " + neutralise(alert.latest_update[:500]))
    if alert.url and alert.url.startswith(("http://", "https://")):
        lines.append(alert.url)
    if alert.playbook:
        lines.append("")
        lines.append(alert.playbook)
    return title[:250], "\n".join(lines)
