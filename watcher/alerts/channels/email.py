"""The email channel: one thread per incident and recipient, over the configured SMTP server.

The first alert about an incident to an address opens a thread; later ones
reply in it (``seq`` counts them, kept in the store with the root Message-ID).
A test alert gets a standalone id; the weekly report is a message of its own
(:func:`~watcher.alerts.email_render.render_standalone`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watcher.alerts.channels.base import FAIL, OK, STANDALONE_ACTIONS, Channel, Check, Outlet, Transports
from watcher.alerts.model import Alert, TransportError

if TYPE_CHECKING:
    from watcher.config import RouteSettings, Settings
    from watcher.store.outbox import Notification

NOT_CONFIGURED = "email is not configured: set email.host and email.sender"


class EmailChannel(Channel):
    name = "email"
    labels = {"en": "email", "fr": "e-mail"}
    fallback_to = "slack"

    def report_targets(self, settings: Settings, transports: Transports) -> list[str]:
        return list(settings.report.emails)

    def fallback_targets(self, settings: Settings, route: RouteSettings | None) -> list[str]:
        return (self.route_targets(route) if route else []) or list(settings.email.fallback_to)

    def open(self, settings: Settings, transports: Transports) -> None:
        from watcher.config import read_secret

        e = settings.email
        if e.host and e.sender:
            from watcher.alerts.email import SmtpMailer

            transports.mailer = SmtpMailer(
                e.host,
                e.port,
                username=e.username,
                password=read_secret(e.password, e.password_file, "email.password"),
                starttls=e.starttls,
                ssl=e.ssl,
                timeout=e.timeout,
                sender=e.sender,
            )

    def configured(self, settings: Settings) -> bool:
        return bool(settings.email.host and settings.email.sender)

    def setup_advice(self) -> tuple[str, str]:
        return (
            "sends email but email.host or email.sender is not set",
            "set [email] host, port, sender and username, and WATCHER_EMAIL__PASSWORD",
        )

    def checks(self, settings: Settings, transports: Transports, targets: list[str]) -> list[Check]:
        """The SMTP server: connect, TLS, login, QUIT (no message), when anything may be mailed."""
        mailer = transports.mailer
        if mailer is None or not (targets or settings.email.fallback_to):
            return []
        try:
            return [Check(OK, "smtp", mailer.check())]
        except TransportError as e:
            return [
                Check(
                    FAIL,
                    "smtp",
                    e.message,
                    "check email.host, email.port, email.starttls/ssl, email.username and WATCHER_EMAIL__PASSWORD",
                )
            ]

    def problem(self, transports: Transports) -> str | None:
        return NOT_CONFIGURED if transports.mailer is None else None

    def timeout(self, settings: Settings) -> float:
        return float(settings.email.timeout)

    def render(self, alert: Alert) -> tuple[str, str, str]:
        """(subject, plain text, HTML) of the message (the first of its thread for an incident)."""
        if alert.message is not None:
            m = alert.message["email"]
            return m["subject"], m["text"], m["html"]
        from watcher.alerts.email_render import render_html, render_subject, render_text

        subject = render_subject(alert)
        return subject, render_text(alert), render_html(alert, subject)

    async def send(self, out: Outlet, n: Notification) -> dict[str, Any]:
        mailer = out.transports.mailer
        if mailer is None:
            raise TransportError(NOT_CONFIGURED, permanent=True)
        message = n.alert.message
        if message is not None:  # rendered by its author (the weekly report)
            from watcher.alerts.email_render import render_standalone

            subject, text, html_body = self.render(n.alert)
            to = mailer.recipients([n.target])
            msg = render_standalone(
                subject=subject, text=text, html_body=html_body, sender=mailer.sender, recipients=to
            )
            delivery = await out.in_thread(self.name, mailer.send_message, msg, to)
            return dict(delivery.ref or {})
        if n.action in STANDALONE_ACTIONS:
            seq = f"{n.action.value}-{datetime.now(UTC):%Y%m%d%H%M%S}"
            delivery = await out.in_thread(self.name, mailer.send, n.alert, [n.target], seq)
            return dict(getattr(delivery, "ref", {}) or {})
        thread = out.store.email_thread(n.incident_id, n.target)
        seq_n = thread[1] + 1 if thread else 0
        delivery = await out.in_thread(self.name, mailer.send, n.alert, [n.target], seq_n)
        ref = dict(getattr(delivery, "ref", {}) or {})
        root = thread[0] if thread else ref.get("message_id", "")
        await out.record(
            n, "its email thread", lambda: out.store.save_email_thread(n.incident_id, n.target, root, seq_n)
        )
        return ref
