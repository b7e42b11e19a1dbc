"""``watcher test-alert``: a realistic sample alert sent straight through the configured channels.

It bypasses the outbox on purpose: the admin wants to know *now* whether the
token, the channel, the SMTP login work, with the transport's own error if not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watcher.alerts.deliver import Transports, apprise_text
from watcher.alerts.model import Alert, AlertAction, Alternative, TransportError
from watcher.config import RouteSettings, Settings


def sample_alert(settings: Settings) -> Alert:
    """An OpenAI outage as it would be sent, with the configured playbook, marked as a test."""
    from watcher.alerts.playbook import PlaybookFacts, render_playbook

    now = datetime.now(UTC)
    alternatives = (
        Alternative("anthropic", "Anthropic", "operational", "all components operational", 820.0),
        Alternative("mistral", "Mistral AI", "operational", "all components operational", 640.0),
        Alternative("google", "Google Gemini", "degraded", "Elevated latency on Gemini API", 2400.0),
    )
    used_for = tuple(settings.vendors["openai"].used_for) if "openai" in settings.vendors else ()
    a = settings.alerts
    playbook = render_playbook(
        PlaybookFacts(
            vendor="openai",
            vendor_name="OpenAI",
            kind="outage",
            title="ChatGPT unavailable for all users (TEST)",
            status="investigating",
            started_at=now - timedelta(minutes=7),
            components=("ChatGPT", "API"),
            used_for=used_for,
            alternatives=alternatives,
            scheduled_for=None,
            scheduled_until=None,
            timezone=a.timezone,
        ),
        locale=a.locale,
        overrides_dir=a.playbooks_dir,
        prompt_library=a.prompt_library,
        now=now,
    )
    return Alert(
        incident_id=0,
        vendor="openai",
        vendor_name="OpenAI",
        title="ChatGPT unavailable for all users (TEST)",
        kind="outage",
        reason='TEST ALERT from watcher test-alert: "unavailable" in title',
        state="open",
        status="investigating",
        action=AlertAction.TEST,
        impact="critical",
        components=("ChatGPT", "API"),
        latest_update="This is a test alert sent by `watcher test-alert`. Nothing is wrong.",
        event_text="test alert",
        url="https://status.openai.com/",
        status_page="https://status.openai.com/",
        started_at=(now - timedelta(minutes=7)).isoformat(),
        playbook=playbook,
        alternatives=alternatives,
    )


def send_test_alerts(settings: Settings, routes: list[RouteSettings]) -> list[tuple[str, str | None]]:
    """Send the sample to every target of these routes; (target, error or None) for each."""
    transports = Transports.from_settings(settings)
    alert = sample_alert(settings)
    results: list[tuple[str, str | None]] = []
    for route in routes:
        for channel in route.slack_channels:
            results.append((f"slack:{channel}", _try(lambda c=channel: _slack(transports, c, alert))))
        for address in route.emails:
            results.append((f"email:{address}", _try(lambda a=address: _email(transports, a, alert))))
        for url in route.apprise:
            shown = url.split("://", 1)[0] + "://…"  # Apprise URLs carry tokens: never print them
            results.append((f"apprise:{shown}", _try(lambda u=url: _apprise(u, alert))))
    return results


def _try(fn) -> str | None:
    try:
        fn()
    except TransportError as e:
        return e.message
    return None


def _slack(t: Transports, channel: str, alert: Alert) -> None:
    if t.slack_bot is not None:
        t.slack_bot.post(channel, alert)
    elif t.slack_webhook is not None:
        t.slack_webhook.post(alert)
    else:
        raise TransportError("Slack is not configured: set WATCHER_SLACK__TOKEN or slack.token_file")


def _email(t: Transports, address: str, alert: Alert) -> None:
    if t.mailer is None:
        raise TransportError("email is not configured: set email.host and email.sender")
    t.mailer.send(alert, [address], "test-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S"))


def _apprise(url: str, alert: Alert) -> None:
    import apprise

    title, body = apprise_text(alert)
    ap = apprise.Apprise()
    if not ap.add(url):
        raise TransportError("invalid Apprise URL")
    if not ap.notify(title=title, body=body):
        raise TransportError("the Apprise service did not accept the notification")
