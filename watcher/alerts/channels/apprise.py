"""The Apprise channel: Teams, Discord, Telegram, PagerDuty, generic webhooks... through one URL each.

Each target is an Apprise URL (it carries its own tokens: never printed, see
:meth:`AppriseChannel.shown`). Every message is a title and a Markdown body in
the alert's language (:func:`apprise_text`); there are no threads, so each
change of an incident is a new message. Test alerts and real ones are the same
text: both come through :meth:`AppriseChannel.send`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from watcher.alerts.channels.base import WARN, Channel, Check, Outlet, Transports
from watcher.alerts.model import Alert, TransportError
from watcher.i18n import has, t

if TYPE_CHECKING:
    from watcher.config import Settings
    from watcher.store.outbox import Notification

TITLE_LIMIT = 250


def apprise_text(alert: Alert) -> tuple[str, str]:
    """Title and Markdown body of an alert, in ``alert.locale``; vendor text neutralised for Markdown."""
    from watcher.alerts.playbook import neutralise

    loc = alert.locale
    if alert.message is not None:  # rendered by its author (the weekly report)
        m = alert.message["text"]
        return str(m["title"])[:TITLE_LIMIT], str(m["body"])
    if alert.state == "resolved":
        state = t(loc, "apprise.state_resolved")
    elif alert.acknowledged_by:
        state = t(loc, "apprise.state_acknowledged", who=neutralise(alert.acknowledged_by, limit=80))
    else:
        state = t(loc, "apprise.state_open")
    kind = t(loc, f"kind_lc.{alert.kind}") if has(loc, f"kind_lc.{alert.kind}") else alert.kind
    status = t(loc, f"status.{alert.status}") if has(loc, f"status.{alert.status}") else alert.status
    title = neutralise(alert.title)
    head = t(
        loc,
        "apprise.title",
        vendor_name=neutralise(alert.vendor_name, limit=80),
        kind=kind,
        title=title,
        state=state,
    )
    lines = [t(loc, "apprise.headline", title=title, kind=kind, status=neutralise(status, limit=80))]
    if alert.event_text:
        lines.append(neutralise(alert.event_text))
    if alert.latest_update:
        lines.append("> " + neutralise(alert.latest_update[:500]))
    if alert.url and alert.url.startswith(("http://", "https://")):
        lines.append(alert.url)
    if alert.playbook:
        lines.append("")
        lines.append(alert.playbook)
    return head[:TITLE_LIMIT], "\n".join(lines)


class AppriseChannel(Channel):
    name = "apprise"
    labels = {"en": "Apprise", "fr": "Apprise"}
    fallback_to = "email"

    def checks(self, settings: Settings, transports: Transports, targets: list[str]) -> list[Check]:
        """Nothing can be checked without sending: said once, when a route uses Apprise."""
        if not targets:
            return []
        return [Check(WARN, "apprise", "Apprise URLs cannot be checked without sending", "`watcher test-alert` sends one")]

    def shown(self, target: str) -> str:
        return target.split("://", 1)[0] + "://…"  # Apprise URLs carry tokens: never print them

    def render(self, alert: Alert) -> tuple[str, str]:
        """(title, Markdown body): :func:`apprise_text`."""
        return apprise_text(alert)

    async def send(self, out: Outlet, n: Notification) -> dict[str, Any]:
        title, body = self.render(n.alert)

        def send() -> bool:
            import apprise

            ap = apprise.Apprise()
            if not ap.add(n.target):
                raise TransportError("invalid Apprise URL (check its scheme and tokens)", permanent=True)
            return bool(ap.notify(title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN))

        if not await out.in_thread(self.name, send):
            raise TransportError("the Apprise service did not accept the notification")
        return {"apprise": True}
