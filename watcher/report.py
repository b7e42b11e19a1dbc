"""The weekly report: how each vendor did, for the team's regular review of its AI tools.

Per watched vendor, over one week:

- **availability**: the share of the week not covered by an ``outage`` or
  ``degradation`` incident (their durations merged where they overlap, clipped
  to the week; an incident still open counts until the end of the week), with
  the outage and degraded time apart;
- **incidents by kind** that started in the week, and the list of them;
- **time to acknowledge** (first alert sent → first acknowledgement) and **time
  to resolve** (vendor's start → resolved), median and 90th percentile;
  maintenance is left out of both;
- from watcher's own probes: the **latency trend** (median time to first token
  this week against the week before), **canary accuracy** (known-answer
  prompts answered right), **tokens and cost** spent.

:func:`build_report` is pure over the store (reads only; the same store and week
give the same report). :func:`render_text`, :func:`render_slack_blocks` and
:func:`render_email` format it; every vendor string is escaped for its target
(Slack mrkdwn through :func:`~watcher.alerts.slack_render.escape_mrkdwn`, HTML
through :func:`html.escape`). :func:`send_report` posts it with the Slack bot
and mails it through the SMTP server of the alerts. :func:`due` and
:func:`run_weekly` schedule it once a week at ``report.weekday`` /
``report.time`` in ``report.timezone``; what was sent to which target is kept in
the ``meta`` table (``report.last_sent:<channel>:<target>``), so a restart never
sends a week twice and a target that failed for a transient reason is tried
again on the next run (for up to :data:`MAX_LATE`).
"""

from __future__ import annotations

import asyncio
import html
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from zoneinfo import ZoneInfo

from watcher import i18n
from watcher.alerts.slack_render import escape_mrkdwn
from watcher.i18n import t

log = logging.getLogger("watcher.report")

DOWN_KINDS = ("outage", "degradation")
KIND_ORDER = ("outage", "degradation", "hallucination_spike", "api_change", "maintenance")
KIND_LABELS = {
    "outage": "outage",
    "degradation": "degradation",
    "hallucination_spike": "hallucination spike",
    "api_change": "API change",
    "maintenance": "maintenance",
}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_LATE = timedelta(days=1)
"""A report not sent within this long after its time (watcher was down) waits for next week's."""
META_PREFIX = "report.last_sent:"
MAX_INCIDENT_LINES = 8
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_LIMIT = 2900


# -- the report ---------------------------------------------------------------------------------


@dataclass(slots=True)
class IncidentLine:
    id: int
    title: str
    kind: str
    started_at: datetime
    resolved_at: datetime | None
    acknowledged_by: str | None = None

    @property
    def duration(self) -> timedelta | None:
        return self.resolved_at - self.started_at if self.resolved_at else None


@dataclass(slots=True)
class VendorReport:
    vendor: str
    name: str
    window_seconds: float
    outage_seconds: float = 0.0
    degraded_seconds: float = 0.0
    down_seconds: float = 0.0
    """Outage and degradation merged (what availability is computed from)."""
    incidents_by_kind: dict[str, int] = field(default_factory=dict)
    incidents: list[IncidentLine] = field(default_factory=list)
    open_at_end: int = 0
    tta: list[float] = field(default_factory=list)
    """Seconds from first alert to first acknowledgement, one per acknowledged incident alerted this week."""
    unacknowledged: int = 0
    ttr: list[float] = field(default_factory=list)
    """Seconds from start to resolve, one per incident resolved this week."""
    ttft_median: float | None = None
    ttft_prev_median: float | None = None
    ttft_samples: int = 0
    canary_passed: int = 0
    canary_total: int = 0
    probe_requests: int = 0
    tokens: int = 0
    cost: float = 0.0

    @property
    def availability(self) -> float:
        """Percent of the week with no outage or degradation."""
        if self.window_seconds <= 0:
            return 100.0
        return max(0.0, 100.0 * (1 - self.down_seconds / self.window_seconds))

    @property
    def canary_accuracy(self) -> float | None:
        return 100.0 * self.canary_passed / self.canary_total if self.canary_total else None

    @property
    def latency_change(self) -> float | None:
        """Percent change of the median first-token time against the week before."""
        if self.ttft_median is None or not self.ttft_prev_median:
            return None
        return 100.0 * (self.ttft_median - self.ttft_prev_median) / self.ttft_prev_median

    def tta_stats(self) -> tuple[float | None, float | None]:
        return _median_p90(self.tta)

    def ttr_stats(self) -> tuple[float | None, float | None]:
        return _median_p90(self.ttr)

    @property
    def quiet(self) -> bool:
        """Nothing to tell: no incident, no downtime, nothing measured."""
        return not (
            self.incidents or self.down_seconds or self.open_at_end or self.probe_requests or self.ttr or self.tta
        )


@dataclass(slots=True)
class Report:
    start: datetime
    end: datetime
    timezone: str
    generated_at: datetime
    vendors: list[VendorReport]
    locale: str = "en"
    """``alerts.locale``: the language of the report (``watcher/locales/<locale>``)."""

    @property
    def total_incidents(self) -> int:
        return sum(len(v.incidents) for v in self.vendors)


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _median_p90(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return _quantile(values, 0.5), _quantile(values, 0.9)


def _union_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    total = 0.0
    cur_start = cur_end = None
    for a, b in sorted(intervals):
        if cur_end is None or a > cur_end:
            if cur_end is not None:
                total += (cur_end - cur_start).total_seconds()
            cur_start, cur_end = a, b
        elif b > cur_end:
            cur_end = b
    if cur_end is not None:
        total += (cur_end - cur_start).total_seconds()
    return total


def _median(values: list[float]) -> float | None:
    return _quantile(values, 0.5) if values else None


def build_report(store, vendors, settings, start: datetime, end: datetime) -> Report:
    """The report for ``[start, end)`` over every vendor in ``vendors`` (reads the store, writes nothing)."""
    if end <= start:
        raise ValueError("the report window must end after it starts")
    window = (end - start).total_seconds()
    out: list[VendorReport] = []
    for v in vendors:
        vr = VendorReport(v.id, v.name, window)
        incidents = store.incidents(vendor=v.id, limit=1_000_000)
        down: dict[str, list[tuple[datetime, datetime]]] = {k: [] for k in DOWN_KINDS}
        for inc in incidents:
            began = inc.started_at or inc.opened_at
            ended = inc.resolved_at
            kind = inc.kind.value
            if began >= end:
                continue
            # availability: the part of the incident inside the week
            if kind in DOWN_KINDS:
                a, b = max(began, start), min(ended or end, end)
                if b > a:
                    down[kind].append((a, b))
            if inc.is_open and began < end:
                vr.open_at_end += 1
            ack = store.first_ack(inc.id) if inc.id is not None else None
            if start <= began < end:
                vr.incidents_by_kind[kind] = vr.incidents_by_kind.get(kind, 0) + 1
                vr.incidents.append(
                    IncidentLine(inc.id or 0, inc.title, kind, began, ended, ack[1] if ack else None)
                )
            if kind == "maintenance" or inc.is_maintenance:
                continue
            if ended is not None and start <= ended < end:
                vr.ttr.append(max(0.0, (ended - began).total_seconds()))
            state = store.alert_state(inc.id) if inc.id is not None else None
            first_alert = state and state.get("first_alert_at")
            if first_alert and start <= first_alert < end:
                if ack is not None:
                    vr.tta.append(max(0.0, (ack[0] - first_alert).total_seconds()))
                else:
                    vr.unacknowledged += 1
        vr.outage_seconds = _union_seconds(down["outage"])
        vr.degraded_seconds = _union_seconds(down["degradation"])
        vr.down_seconds = _union_seconds(down["outage"] + down["degradation"])
        vr.incidents.sort(key=lambda i: (i.started_at, i.id))
        _probe_figures(store, vr, v.id, start, end)
        out.append(vr)
    return Report(start, end, settings.report.timezone, datetime.now(UTC), out, settings.alerts.locale)


def _probe_figures(store, vr: VendorReport, vendor: str, start: datetime, end: datetime) -> None:
    span = end - start
    this = store.probe_ttfts(vendor, start, end)
    prev = store.probe_ttfts(vendor, start - span, start)
    vr.ttft_median, vr.ttft_prev_median, vr.ttft_samples = _median(this), _median(prev), len(this)
    s = store.probe_summary(vendor, start, end)
    vr.probe_requests, vr.canary_passed, vr.canary_total = s["requests"], s["passed"], s["answered"]
    vr.tokens, vr.cost = s["tokens"], s["cost"]


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
                " " + t(loc, "report.down_split", outage=d(vr.outage_seconds), degraded=d(vr.degraded_seconds))
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
        facts.append((t(loc, "report.probe_latency"), t(loc, "report.first_token", ms=_ms(vr.ttft_median)) + trend))
    if vr.canary_total:
        facts.append(
            (
                t(loc, "report.canary"),
                t(
                    loc,
                    "report.canary_value",
                    pct=_one_decimal(vr.canary_accuracy, loc),
                    passed=vr.canary_passed,
                    total=vr.canary_total,
                ),
            )
        )
    if vr.probe_requests:
        facts.append(
            (
                t(loc, "report.probes_spent"),
                t(loc, "report.probes_value", tokens=_integer(vr.tokens, loc), cost=f"{vr.cost:.4f}", n=vr.probe_requests),
            )
        )
    return facts


def _incident_text(i: IncidentLine, tz: str, loc: str = "en") -> tuple[str, str]:
    """(facts, title): facts are ours (safe), the title is the vendor's (escape it for the target)."""
    when = _when(i.started_at, tz, loc)
    if i.resolved_at:
        span = f"{when} → {_when(i.resolved_at, tz, loc)}, {human_duration(i.duration.total_seconds(), loc)}"
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
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), SLACK_SECTION_LIMIT)}})
    if overflow:
        text = t(loc, "report.also") + f"{colon} " + ", ".join(
            f"{escape_mrkdwn(_clean(v.name, 60))} ({_pct(v.availability, loc)})" for v in overflow
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_SECTION_LIMIT)}})
    if not active:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": t(loc, "report.nothing")}}
        )
    if quiet:
        blocks.append({"type": "divider"})
        text = t(loc, "report.quiet") + f"{colon} " + ", ".join(escape_mrkdwn(_clean(v.name, 60)) for v in quiet)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, SLACK_SECTION_LIMIT)}]})
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
    report: Report, *, sender: str = "watcher <watcher@localhost>", recipients: list[str] | tuple[str, ...] = ()
) -> EmailMessage:
    """A ``multipart/alternative`` message (plain text and HTML) ready for ``send_message``."""
    from watcher.alerts.email import header_value, sender_domain

    msg = EmailMessage()
    msg["Subject"] = header_value(render_subject(report), 200)
    name, addr = parseaddr(header_value(sender))
    msg["From"] = formataddr((name, addr)) if name else addr
    if recipients:
        msg["To"] = ", ".join(header_value(r) for r in recipients)
    msg["Date"] = format_datetime(report.generated_at.astimezone(UTC))
    msg["Message-ID"] = make_msgid("watcher-report", domain=sender_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(render_text(report), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(render_html(report), subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


# -- sending --------------------------------------------------------------------------------------


@dataclass(slots=True)
class SendResult:
    target: str
    """``slack:C0123`` or ``email:team@example.com``."""
    ok: bool
    error: str | None = None
    permanent: bool = False


def _post_slack(bot, channel: str, text: str, blocks: list[dict]) -> None:
    from watcher.alerts.slack import error_from_exception

    try:
        bot.client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
        )
    except Exception as e:
        raise error_from_exception(e, channel=channel) from None


def _post_webhook(hook, text: str, blocks: list[dict]) -> None:
    from watcher.alerts.slack import error_from_exception, slack_error

    try:
        resp = hook.client.send(text=text, blocks=blocks, unfurl_links=False, unfurl_media=False)
    except Exception as e:
        raise error_from_exception(e, webhook=True) from None
    if resp.status_code != 200:
        body = (resp.body or "").strip()
        raise slack_error(resp.status_code, body.split()[0] if body else None, resp.headers, webhook=True)


def send_email(mailer, report: Report, recipients: list[str]) -> str:
    """Send the report through the alerts' :class:`~watcher.alerts.email.SmtpMailer` (same TLS, login and
    error wording); returns the Message-ID. Raises :class:`~watcher.alerts.model.TransportError`."""
    to = mailer._recipients(recipients)
    msg = render_email(report, sender=mailer.sender, recipients=to)
    smtp = mailer._open()
    try:
        smtp.send_message(msg, from_addr=mailer.envelope_sender, to_addrs=to)
    except Exception as err:
        smtp.close()
        raise mailer._error(err, "send", to) from None
    mailer._quit(smtp)
    return str(msg["Message-ID"])


async def send_report(
    report: Report,
    settings,
    transports=None,
    *,
    slack_channels: list[str] | None = None,
    emails: list[str] | None = None,
) -> list[SendResult]:
    """Post to ``report.slack_channels`` and mail ``report.emails`` (or the lists given); never raises.

    ``transports`` defaults to :meth:`Transports.from_settings` (the bot token and
    SMTP server of the alerts). With an incoming webhook instead of a bot, the
    report goes once to the webhook's channel.
    """
    from watcher.alerts.model import TransportError

    if transports is None:
        from watcher.alerts.deliver import Transports

        transports = Transports.from_settings(settings)
    channels = settings.report.slack_channels if slack_channels is None else slack_channels
    addresses = settings.report.emails if emails is None else emails
    results: list[SendResult] = []

    async def attempt(target: str, fn, *args) -> None:
        try:
            await asyncio.to_thread(fn, *args)
        except TransportError as e:
            log.log(
                logging.ERROR if e.permanent else logging.WARNING,
                "weekly report to %s failed: %s",
                target,
                e.message,
            )
            results.append(SendResult(target, False, e.message, e.permanent))
            return
        except Exception as e:  # a bug must not kill the scheduler job
            log.exception("weekly report to %s failed", target)
            results.append(SendResult(target, False, f"unexpected error: {e!r}"))
            return
        log.info("weekly report sent to %s", target)
        results.append(SendResult(target, True))

    if channels:
        text, blocks = render_slack_blocks(report)
        if transports.slack_bot is not None:
            for ch in channels:
                await attempt(f"slack:{ch}", _post_slack, transports.slack_bot, ch, text, blocks)
        elif transports.slack_webhook is not None:
            await attempt("slack:webhook", _post_webhook, transports.slack_webhook, text, blocks)
        else:
            for ch in channels:
                why = "Slack is not configured: set WATCHER_SLACK__TOKEN"
                log.error("weekly report to slack:%s not sent: %s", ch, why)
                results.append(SendResult(f"slack:{ch}", False, why, True))
    for addr in addresses:
        if transports.mailer is None:
            why = "email is not configured: set email.host and email.sender"
            log.error("weekly report to email:%s not sent: %s", addr, why)
            results.append(SendResult(f"email:{addr}", False, why, True))
            continue
        await attempt(f"email:{addr}", send_email, transports.mailer, report, [addr])
    return results


# -- scheduling -----------------------------------------------------------------------------------


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


def _targets(settings, transports) -> list[tuple[str, str]]:
    r = settings.report
    out: list[tuple[str, str]] = []
    if r.slack_channels:
        if transports is not None and transports.slack_bot is None and transports.slack_webhook is not None:
            out.append(("slack", "webhook"))
        else:
            out += [("slack", c) for c in r.slack_channels]
    out += [("email", a) for a in r.emails]
    return out


async def run_weekly(store, vendors, settings, transports=None, *, now: datetime | None = None) -> list[SendResult]:
    """The daemon's report job (run it every few minutes): send the week's report to each target not
    yet served; a target that failed transiently is tried again on the next run."""
    now = now or datetime.now(UTC)
    if not settings.report.enabled:
        return []
    if transports is None:
        from watcher.alerts.deliver import Transports

        transports = Transports.from_settings(settings)
    pending = [(c, t) for c, t in _targets(settings, transports) if due(now, settings, last_sent(store, f"{c}:{t}"))]
    if not pending:
        return []
    start, end = report_window(now, settings)
    report = build_report(store, vendors, settings, start, end)
    slack = [t for c, t in pending if c == "slack"]
    results = await send_report(
        report,
        settings,
        transports,
        slack_channels=(settings.report.slack_channels if slack == ["webhook"] else slack),
        emails=[t for c, t in pending if c == "email"],
    )
    for r in results:
        if r.ok or r.permanent:
            mark_sent(store, r.target, now)
    sent = [r.target for r in results if r.ok]
    if sent:
        store.audit(now, "watcher", "report", f"weekly report {start.date()}–{end.date()} sent to {', '.join(sent)}")
    return results
