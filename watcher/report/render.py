"""The weekly report in three formats: plain text, Slack Block Kit, HTML email (pure, no I/O).

Every vendor string is escaped for its target: Slack mrkdwn through
:func:`~watcher.alerts.slack_render.escape_mrkdwn`, HTML through
:func:`html.escape`, plain text cleaned of control characters. Every word is
from ``watcher/locales/<lang>/messages.toml`` (``[report]``), in the report's locale.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from watcher import i18n
from watcher.alerts.slack_render import escape_mrkdwn
from watcher.i18n import t
from watcher.report.figures import IncidentLine, Report, VendorReport

KIND_ORDER = ("outage", "degradation", "hallucination_spike", "api_change", "maintenance")
MAX_INCIDENT_LINES = 8
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_LIMIT = 2900


# -- formatting helpers -------------------------------------------------------------------------


def human_duration(seconds: float | None, locale: str = "en") -> str:
    """``1 hr 29 min`` / ``1 h 29 min`` (Babel, for the locale); ``–`` when there is no figure."""
    if seconds is None:
        return "–"
    return i18n.format_duration(round(max(0.0, seconds)), locale)


def _pct(value: float, locale: str = "en") -> str:
    from babel.numbers import format_decimal

    if value >= 100.0:
        return "100 %"
    return format_decimal(min(value, 99.99), "0.00", locale=i18n.lang(locale)) + " %"


def _integer(value: int, locale: str) -> str:
    from babel.numbers import format_decimal

    return format_decimal(value, locale=i18n.lang(locale))


def _one_decimal(value: float, locale: str) -> str:
    from babel.numbers import format_decimal

    return format_decimal(value, "0.0", locale=i18n.lang(locale))


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def _local(dt: datetime, tz: str) -> datetime:
    return dt.astimezone(ZoneInfo(tz))


def _date(dt: datetime, pattern: str, locale: str) -> str:
    from babel.dates import format_datetime

    return format_datetime(dt, pattern, tzinfo=dt.tzinfo, locale=i18n.lang(locale))


def _when(dt: datetime, tz: str, locale: str = "en") -> str:
    return _date(_local(dt, tz), "EEE d MMM HH:mm", locale)


def _period(report: Report) -> str:
    a = _local(report.start, report.timezone)
    b = _local(report.end - timedelta(seconds=1), report.timezone)
    return f"{_date(a, 'EEE d MMM y', report.locale)} – {_date(b, 'EEE d MMM y', report.locale)} ({report.timezone})"


def _kinds_line(vr: VendorReport, loc: str) -> str:
    if not vr.incidents_by_kind:
        return t(loc, "report.no_incidents")
    parts = [
        f"{vr.incidents_by_kind[k]} {t(loc, 'kind_lc.' + k) if i18n.has(loc, 'kind_lc.' + k) else k}"
        for k in sorted(vr.incidents_by_kind, key=lambda k: KIND_ORDER.index(k) if k in KIND_ORDER else 99)
    ]
    return ", ".join(parts)


def _facts(vr: VendorReport, loc: str = "en") -> list[tuple[str, str]]:
    """(label, value) lines of one vendor, plain text (values hold no vendor text)."""

    def d(seconds: float | None) -> str:
        return human_duration(seconds, loc)

    facts = [
        (
            t(loc, "report.availability"),
            _pct(vr.availability, loc)
            + (
                " "
                + t(loc, "report.down_split", outage=d(vr.outage_seconds), degraded=d(vr.degraded_seconds))
                if vr.down_seconds
                else ""
            ),
        ),
        (
            t(loc, "report.incidents"),
            _kinds_line(vr, loc) + (t(loc, "report.still_open", n=vr.open_at_end) if vr.open_at_end else ""),
        ),
    ]
    med, p90 = vr.tta_stats()
    if vr.tta or vr.unacknowledged:
        tail = " (" + t(loc, "report.n_acknowledged", n=len(vr.tta))
        tail += (t(loc, "report.n_never", n=vr.unacknowledged) if vr.unacknowledged else "") + ")"
        facts.append(
            (t(loc, "report.tta"), t(loc, "report.median_p90", median=d(med), p90=d(p90)) + tail)
            if vr.tta
            else (t(loc, "report.tta"), t(loc, "report.none_acknowledged", n=vr.unacknowledged))
        )
    med, p90 = vr.ttr_stats()
    if vr.ttr:
        facts.append(
            (
                t(loc, "report.ttr"),
                t(loc, "report.median_p90", median=d(med), p90=d(p90))
                + " ("
                + t(loc, "report.n_resolved", n=len(vr.ttr))
                + ")",
            )
        )
    if vr.ttft_median is not None or vr.ttft_prev_median is not None:
        change = vr.latency_change
        trend = ""
        if change is not None:
            key = "report.slower" if change > 0 else "report.faster"
            trend = t(loc, key, pct=f"{abs(change):.0f}", before=_ms(vr.ttft_prev_median))
        elif vr.ttft_prev_median is None:
            trend = " " + t(loc, "report.no_figure_before")
        facts.append(
            (t(loc, "report.probe_latency"), t(loc, "report.first_token", ms=_ms(vr.ttft_median)) + trend)
        )
    if vr.canary_total:
        facts.append(
            (
                t(loc, "report.canary"),
                t(
                    loc,
                    "report.canary_value",
                    pct=_one_decimal(vr.canary_accuracy or 0.0, loc),
                    passed=vr.canary_passed,
                    total=vr.canary_total,
                ),
            )
        )
    if vr.probe_requests:
        facts.append(
            (
                t(loc, "report.probes_spent"),
                t(
                    loc,
                    "report.probes_value",
                    tokens=_integer(vr.tokens, loc),
                    cost=f"{vr.cost:.4f}",
                    n=vr.probe_requests,
                ),
            )
        )
    return facts


def _incident_text(i: IncidentLine, tz: str, loc: str = "en") -> tuple[str, str]:
    """(facts, title): facts are ours (safe), the title is the vendor's (escape it for the target)."""
    when = _when(i.started_at, tz, loc)
    if i.resolved_at:
        took = i.resolved_at - i.started_at
        span = f"{when} → {_when(i.resolved_at, tz, loc)}, {human_duration(took.total_seconds(), loc)}"
    else:
        span = t(loc, "report.since_open", when=when)
    kind = t(loc, "kind_lc." + i.kind) if i18n.has(loc, "kind_lc." + i.kind) else i.kind
    return f"#{i.id} {kind}, {span}", i.title


def _clean(text: str, limit: int = 200) -> str:
    from watcher.alerts.email import clean_text

    return " ".join(clean_text(text, limit).split())


# -- plain text ---------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    tz, loc = report.timezone, report.locale
    colon = " :" if i18n.lang(loc) == "fr" else ":"
    lines = [t(loc, "report.title") + f"{colon} {_period(report)}", ""]
    active = [v for v in report.vendors if not v.quiet]
    quiet = [v for v in report.vendors if v.quiet]
    if not active:
        lines += [t(loc, "report.nothing_week"), ""]
    for vr in active:
        lines.append(_clean(vr.name, 80))
        facts_ = _facts(vr, loc)
        width = max(len(label) for label, _ in facts_)
        lines += [f"  {label + colon:<{width + len(colon)}} {value}" for label, value in facts_]
        for i in vr.incidents[:MAX_INCIDENT_LINES]:
            facts, title = _incident_text(i, tz, loc)
            lines.append(f"  - {facts}{colon} {_clean(title)}")
        if len(vr.incidents) > MAX_INCIDENT_LINES:
            lines.append("  - " + t(loc, "report.and_more", n=len(vr.incidents) - MAX_INCIDENT_LINES))
        lines.append("")
    if quiet:
        lines += [t(loc, "report.quiet") + f"{colon} " + ", ".join(_clean(v.name, 80) for v in quiet), ""]
    lines += ["-- ", *t(loc, "report.footnote").strip().split("\n")]
    return "\n".join(lines) + "\n"


# -- Slack ----------------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_slack_blocks(report: Report) -> tuple[str, list[dict]]:
    """(fallback text, blocks) for ``chat.postMessage``. Vendor text goes through ``escape_mrkdwn``."""
    tz, loc = report.timezone, report.locale
    colon = " :" if i18n.lang(loc) == "fr" else ":"
    header = t(loc, "report.title")
    fallback = f"{header}{colon} {_period(report)}"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(_period(report))}]},
    ]
    active = [v for v in report.vendors if not v.quiet]
    quiet = [v for v in report.vendors if v.quiet]
    room = SLACK_MAX_BLOCKS - len(blocks) - (2 if quiet else 1)
    shown, overflow = active[:room], active[room:]
    for vr in shown:
        lines = [f"*{escape_mrkdwn(_clean(vr.name, 80))}*"]
        lines += [f"{label}{colon} {escape_mrkdwn(value)}" for label, value in _facts(vr, loc)]
        for i in vr.incidents[:MAX_INCIDENT_LINES]:
            facts, title = _incident_text(i, tz, loc)
            lines.append(f"• {escape_mrkdwn(facts)}{colon} {escape_mrkdwn(_clean(title, 150))}")
        if len(vr.incidents) > MAX_INCIDENT_LINES:
            lines.append("• " + t(loc, "report.and_more", n=len(vr.incidents) - MAX_INCIDENT_LINES))
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), SLACK_SECTION_LIMIT)},
            }
        )
    if overflow:
        text = (
            t(loc, "report.also")
            + f"{colon} "
            + ", ".join(
                f"{escape_mrkdwn(_clean(v.name, 60))} ({_pct(v.availability, loc)})" for v in overflow
            )
        )
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_SECTION_LIMIT)}}
        )
    if not active:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": t(loc, "report.nothing")}})
    if quiet:
        blocks.append({"type": "divider"})
        text = (
            t(loc, "report.quiet") + f"{colon} " + ", ".join(escape_mrkdwn(_clean(v.name, 60)) for v in quiet)
        )
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, SLACK_SECTION_LIMIT)}]}
        )
    return fallback, blocks[:SLACK_MAX_BLOCKS]


# -- email ----------------------------------------------------------------------------------------


def render_subject(report: Report) -> str:
    a = _local(report.start, report.timezone)
    b = _local(report.end - timedelta(seconds=1), report.timezone)
    n, loc = report.total_incidents, report.locale
    colon = " :" if i18n.lang(loc) == "fr" else ":"
    period = f"{_date(a, 'd MMM', loc)} – {_date(b, 'd MMM y', loc)}"
    count = t(loc, "report.one_incident" if n == 1 else "report.n_incidents", n=n)
    return t(loc, "report.subject", period=period) + f"{colon} {count}"


def render_html(report: Report) -> str:
    e = html.escape
    tz, loc = report.timezone, report.locale
    colon = " :" if i18n.lang(loc) == "fr" else ":"
    font = "font-family:Arial,Helvetica,sans-serif;color:#172b4d"
    parts = [
        f'<div style="{font};max-width:680px">',
        f'<h1 style="font-size:20px;margin:0 0 4px">{e(t(loc, "report.title"))}</h1>'
        f'<p style="color:#5e6c84;margin:0 0 16px">{e(_period(report))}</p>',
    ]
    active = [v for v in report.vendors if not v.quiet]
    quiet = [v for v in report.vendors if v.quiet]
    if not active:
        parts.append(f"<p>{e(t(loc, 'report.nothing_week'))}</p>")
    for vr in active:
        colour = "#1f845a" if vr.availability >= 99.9 else ("#b65c02" if vr.availability >= 99 else "#c9372c")
        parts.append(
            f'<h2 style="font-size:16px;margin:18px 0 6px;border-left:4px solid {colour};padding-left:8px">'
            f"{e(_clean(vr.name, 80))}</h2>"
        )
        rows = "".join(
            f'<tr><td style="padding:2px 12px 2px 0;color:#5e6c84;white-space:nowrap">{e(label)}</td>'
            f'<td style="padding:2px 0">{e(value)}</td></tr>'
            for label, value in _facts(vr, loc)
        )
        parts.append(f'<table style="border-collapse:collapse;font-size:14px">{rows}</table>')
        if vr.incidents:
            items = "".join(
                f"<li>{e(facts)}{colon} {e(_clean(title))}</li>"
                for facts, title in (_incident_text(i, tz, loc) for i in vr.incidents[:MAX_INCIDENT_LINES])
            )
            more = (
                f"<li>{e(t(loc, 'report.and_more', n=len(vr.incidents) - MAX_INCIDENT_LINES))}</li>"
                if len(vr.incidents) > MAX_INCIDENT_LINES
                else ""
            )
            parts.append(f'<ul style="font-size:14px;margin:6px 0;padding-left:20px">{items}{more}</ul>')
    if quiet:
        parts.append(
            '<p style="color:#5e6c84;font-size:14px">'
            + e(t(loc, "report.quiet") + f"{colon} ")
            + e(", ".join(_clean(v.name, 80) for v in quiet))
            + "</p>"
        )
    parts.append(
        '<p style="color:#5e6c84;font-size:12px;margin-top:20px">'
        + e(" ".join(t(loc, "report.footnote").split()))
        + "</p></div>"
    )
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def render_email(
    report: Report,
    *,
    sender: str = "watcher <watcher@localhost>",
    recipients: list[str] | tuple[str, ...] = (),
) -> EmailMessage:
    """A ``multipart/alternative`` message (plain text and HTML), as the email channel builds it."""
    from watcher.alerts.email_render import render_standalone

    return render_standalone(
        subject=render_subject(report),
        text=render_text(report),
        html_body=render_html(report),
        sender=sender,
        recipients=recipients,
        now=report.generated_at,
    )


def render_message(report: Report) -> dict[str, dict[str, object]]:
    """The report in every format a channel may want, for :attr:`watcher.alerts.model.Alert.message`:
    rendered once, when it is queued, so it waits in the outbox like an alert."""
    text, blocks = render_slack_blocks(report)
    subject, plain = render_subject(report), render_text(report)
    return {
        "slack": {"text": text, "blocks": blocks},
        "email": {"subject": subject, "text": plain, "html": render_html(report)},
        "text": {"title": subject, "body": plain},
    }
