"""The weekly report's schedule and its way out: queued in the outbox, sent by the channels.

:func:`due` and :func:`run_weekly` schedule it once a week at ``report.weekday`` /
``report.time`` in ``report.timezone``. :func:`run_weekly` renders the report once
and queues it in the outbox for every target not yet served (incident 0, action
``report``, the rendered formats in the row's ``alert`` JSON): from there the
Deliverer sends it like an alert, through the same channel code, with the same
retries, backoff and fallback to the other channel. Which week was queued for
which target is kept in the ``meta`` table (``report.last_sent:<channel>:<target>``),
so a restart never queues a week twice. :func:`send_report` sends now, without
the outbox, through the same :meth:`~watcher.alerts.channels.base.Channel.send`
(an admin trying the report; tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from watcher.alerts.channels import DirectOutlet, Transports, registry
from watcher.alerts.channels.slack import WEBHOOK_TARGET
from watcher.alerts.model import Alert, AlertAction, TransportError
from watcher.report.figures import Report, build_report
from watcher.report.render import render_message, render_subject
from watcher.store.outbox import Notification

log = logging.getLogger("watcher.report")

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_LATE = timedelta(days=1)
"""A report not queued within this long after its time (watcher was down) waits for next week's."""
META_PREFIX = "report.last_sent:"
ROUTE = "report"
"""The outbox ``route`` of report rows (no configured route has it: the fallback uses ``email.fallback_to``
and ``slack.fallback_channel``)."""


@dataclass(slots=True)
class SendResult:
    target: str
    """``slack:C0123`` or ``email:team@example.com``."""
    ok: bool
    error: str | None = None
    permanent: bool = False


def report_alert(report: Report) -> Alert:
    """The report as an outbox payload: no incident, every format rendered (:attr:`Alert.message`)."""
    return Alert(
        incident_id=0,
        vendor="watcher",
        vendor_name="watcher",
        title=render_subject(report),
        kind="report",
        reason="",
        state="open",
        status="",
        action=AlertAction.REPORT,
        message=render_message(report),
        locale=report.locale,
        timezone=report.timezone,
    )


def report_targets(settings: Any, transports: Transports) -> list[tuple[str, str]]:
    """(channel, target) the weekly report goes to, in order, from each channel's ``report_targets``."""
    return [
        (ch.name, target) for ch in registry.channels() for target in ch.report_targets(settings, transports)
    ]


def _row(channel: str, target: str, alert: Alert, now: datetime) -> Notification:
    return Notification(
        id=0,
        incident_id=0,
        action=AlertAction.REPORT,
        channel=channel,
        target=target,
        route=ROUTE,
        alert=alert,
        state="sending",
        attempts=1,
        not_before=now,
        created_at=now,
    )


async def send_report(
    report: Report,
    settings: Any,
    transports: Transports | None = None,
    *,
    slack_channels: list[str] | None = None,
    emails: list[str] | None = None,
) -> list[SendResult]:
    """Send now to ``report.slack_channels`` and ``report.emails`` (or the lists given); never raises.

    Each target goes through its channel's ``send``, as from the outbox, but
    without retries: the result says at once what failed. ``transports``
    defaults to the channels' senders from the settings.
    """
    if transports is None:
        transports = Transports.from_settings(settings)
    channels = settings.report.slack_channels if slack_channels is None else slack_channels
    addresses = settings.report.emails if emails is None else emails
    targets: list[tuple[str, str]] = []
    if channels:
        webhook_only = transports.slack_bot is None and transports.slack_webhook is not None
        targets += [("slack", WEBHOOK_TARGET)] if webhook_only else [("slack", c) for c in channels]
    targets += [("email", a) for a in addresses]
    alert = report_alert(report)
    out = DirectOutlet(settings, transports)
    results: list[SendResult] = []
    for name, target in targets:
        shown = f"{name}:{target}"
        channel = registry.get(name)
        problem = channel.problem(transports) if channel is not None else f"unknown channel {name!r}"
        if channel is None or problem is not None:
            log.error("weekly report to %s not sent: %s", shown, problem)
            results.append(SendResult(shown, False, problem, True))
            continue
        try:
            await channel.send(out, _row(name, target, alert, out.clock()))
        except TransportError as e:
            log.log(
                logging.ERROR if e.permanent else logging.WARNING,
                "weekly report to %s failed: %s",
                shown,
                e.message,
            )
            results.append(SendResult(shown, False, e.message, e.permanent))
            continue
        except Exception as e:  # a bug must not kill the caller
            log.exception("weekly report to %s failed", shown)
            results.append(SendResult(shown, False, f"unexpected error: {e!r}"))
            continue
        log.info("weekly report sent to %s", shown)
        results.append(SendResult(shown, True))
    return results


def last_occurrence(now: datetime, settings) -> datetime:
    """The latest scheduled time (``report.weekday`` at ``report.time`` in ``report.timezone``) ≤ ``now``, in UTC."""
    r = settings.report
    tz = ZoneInfo(r.timezone)
    local = now.astimezone(tz)
    back = (local.weekday() - WEEKDAYS.index(r.weekday)) % 7
    day = local.date() - timedelta(days=back)
    cand = datetime.combine(day, r.time, tzinfo=tz)
    if cand.astimezone(UTC) > now.astimezone(UTC):
        cand = datetime.combine(day - timedelta(days=7), r.time, tzinfo=tz)
    return cand.astimezone(UTC)


def report_window(now: datetime, settings) -> tuple[datetime, datetime]:
    """The week the report due at ``now`` covers: the 7 local days before the latest scheduled time."""
    end = last_occurrence(now, settings)
    tz = ZoneInfo(settings.report.timezone)
    local_end = end.astimezone(tz)
    start = datetime.combine(local_end.date() - timedelta(days=7), settings.report.time, tzinfo=tz)
    return start.astimezone(UTC), end


def due(now: datetime, settings, last_sent: datetime | None) -> bool:
    """True when a report should go now: its weekly time has passed (by at most :data:`MAX_LATE`)
    and it was not sent since."""
    if not settings.report.enabled:
        return False
    occ = last_occurrence(now, settings)
    if now - occ > MAX_LATE:
        return False
    return last_sent is None or last_sent < occ


def last_sent(store, target: str) -> datetime | None:
    value = store.meta_get(META_PREFIX + target)
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def mark_sent(store, target: str, at: datetime) -> None:
    store.meta_set(META_PREFIX + target, at.astimezone(UTC).isoformat(timespec="seconds"))


async def run_weekly(
    store: Any,
    vendors: Any,
    settings: Any,
    transports: Transports | None = None,
    *,
    now: datetime | None = None,
) -> list[str]:
    """The daemon's report job (run it every few minutes): when the week's report is due, queue it in
    the outbox for each target not yet served; returns those targets (``slack:C0123``).

    From the outbox the Deliverer sends it with retries and fallback, like an alert.
    """
    now = now or datetime.now(UTC)
    if not settings.report.enabled:
        return []
    if transports is None:
        transports = Transports.from_settings(settings)
    pending = [
        (c, t)
        for c, t in report_targets(settings, transports)
        if due(now, settings, last_sent(store, f"{c}:{t}"))
    ]
    if not pending:
        return []
    start, end = report_window(now, settings)
    report = build_report(store, vendors, settings, start, end)
    alert = report_alert(report)
    queued: list[str] = []
    for channel, target in pending:
        with store.transaction("queue the weekly report"):
            store.enqueue(
                incident_id=0,
                action=AlertAction.REPORT,
                channel=channel,
                target=target,
                route=ROUTE,
                alert=alert,
                now=now,
            )
            mark_sent(store, f"{channel}:{target}", now)
        queued.append(f"{channel}:{target}")
    store.audit(
        now, "watcher", "report", f"weekly report {start.date()}–{end.date()} queued for {', '.join(queued)}"
    )
    log.info("weekly report %s–%s queued for %s", start.date(), end.date(), ", ".join(queued))
    return queued
