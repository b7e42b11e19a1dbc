"""``watcher test-alert``: a realistic sample alert sent straight through the configured channels.

It bypasses the outbox on purpose: the admin wants to know *now* whether the
token, the channel, the SMTP login work, with the transport's own error if not.
It does not bypass the channels: each target gets the sample through its
channel's :meth:`~watcher.alerts.channels.base.Channel.send`, the same code the
outbox runs, so a test message looks exactly like a real one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from watcher.alerts.channels import DirectOutlet, Transports, registry
from watcher.alerts.model import Alert, AlertAction, Alternative, TransportError
from watcher.config import RouteSettings, Settings
from watcher.store.outbox import Notification


def sample_alert(settings: Settings, store=None) -> Alert:
    """An outage of a watched vendor as it would be sent, with the configured playbook, marked as a test.

    The other watched vendors appear as they really are now (their state read from ``store``, the
    daemon's database; "unknown" when there is none yet): no invented states or latencies, and no
    vendor the team does not watch.
    """
    from watcher.alerts.playbook import PlaybookFacts, render_playbook
    from watcher.catalog import resolve
    from watcher.i18n import t

    now = datetime.now(UTC)
    a = settings.alerts
    loc = a.locale
    vendors = resolve(settings)
    sample = next((v for v in vendors if v.id == "openai"), vendors[0] if vendors else None)
    vid, name = (sample.id, sample.name) if sample else ("openai", "OpenAI")
    states: dict[str, tuple[str, str]] = {}
    if store is not None:
        from watcher.status import all_statuses

        states = {s.vendor.id: (s.state.value, s.reason_in(loc)) for s in all_statuses(store, vendors, now)}
    alternatives = tuple(
        Alternative(
            v.id,
            v.name,
            *states.get(v.id, ("unknown", "")),
            note=v.comparison.get(loc) or v.comparison.get("en", ""),
        )
        for v in vendors
        if v.id != vid
    )
    used_for = tuple(settings.vendors[vid].used_for) if vid in settings.vendors else ()
    title = t(loc, "test_alert.title")
    started = now - timedelta(minutes=7)
    playbook = render_playbook(
        PlaybookFacts(
            vendor=vid,
            vendor_name=name,
            kind="outage",
            title=title,
            status="investigating",
            started_at=started,
            components=(),
            used_for=used_for,
            alternatives=alternatives,
            scheduled_for=None,
            scheduled_until=None,
            timezone=a.timezone,
        ),
        locale=loc,
        overrides_dir=a.playbooks_dir,
        prompt_library=a.prompt_library,
        now=now,
    )
    return Alert(
        incident_id=0,
        vendor=vid,
        vendor_name=name,
        title=title,
        kind="outage",
        reason=t(loc, "test_alert.reason"),
        state="open",
        status="investigating",
        action=AlertAction.TEST,
        impact="critical",
        latest_update=t(loc, "test_alert.update"),
        event_text=t(loc, "test_alert.event"),
        status_page=sample.status_page if sample else None,
        started_at=started.isoformat(),
        playbook=playbook,
        alternatives=alternatives,
        locale=loc,
        timezone=a.timezone,
    )


def send_test_alerts(
    settings: Settings, routes: list[RouteSettings], store=None
) -> list[tuple[str, str | None]]:
    """Send the sample to every target of these routes; (target, error or None) for each.

    ``store``: the daemon's database, for the real state of the other watched vendors."""
    transports = Transports.from_settings(settings)
    alert = sample_alert(settings, store)
    return asyncio.run(_send_all(settings, transports, routes, alert))


async def _send_all(
    settings: Settings, transports: Transports, routes: list[RouteSettings], alert: Alert
) -> list[tuple[str, str | None]]:
    out = DirectOutlet(settings, transports)
    now = out.clock()
    results: list[tuple[str, str | None]] = []
    for route in routes:
        for channel in registry.channels():
            for target in channel.route_targets(route):
                n = Notification(
                    id=0,
                    incident_id=0,
                    action=AlertAction.TEST,
                    channel=channel.name,
                    target=target,
                    route=route.name,
                    alert=alert,
                    state="sending",
                    attempts=1,
                    not_before=now,
                    created_at=now,
                )
                error: str | None = None
                try:
                    await channel.send(out, n)
                except TransportError as e:
                    error = e.message
                results.append((f"{channel.name}:{channel.shown(target)}", error))
    return results
