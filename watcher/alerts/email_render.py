"""Email alerts, rendering only: an :class:`Alert` as a threaded multipart message (no I/O).

Sending is :mod:`watcher.alerts.email` (SMTP); the escaping and Markdown rules are
:mod:`watcher.alerts.email_text`.

Rendering (:func:`render_email`) is pure: the same alert, recipients and ``seq``
give the same message (except ``Date`` unless ``now`` is passed). The message
is ``multipart/alternative`` with a ``text/plain`` part that stands on its own
(plain-text clients, previews, screen readers) and a ``text/html`` part with
inline CSS only (Gmail and Outlook drop ``<style>`` blocks in many cases).

Security rules:

- Every string of an :class:`Alert` is untrusted in HTML, including the
  playbook: values are interpolated only through :func:`html.escape`; the
  playbook Markdown goes through markdown-it-py with raw HTML off (``<script>``
  in the input comes out as text), images off (no remote loads, no tracking
  pixels), and links allowed only for ``http``/``https``.
- Every URL we link ourselves (acknowledge, vendor incident, status page, our
  board) must be absolute ``http(s)`` or it is not shown at all.
- Header values lose CR/LF and other control characters (no header injection)
  and the subject is capped at :data:`SUBJECT_LIMIT` characters.

Threading (see :func:`message_id`): the first message about an incident to a
set of recipients has ``Message-ID: <watcher-incident-{id}-{tag}@{domain}>``;
follow-up number ``seq`` has ``<watcher-incident-{id}-{tag}-{seq}@{domain}>``
and points ``In-Reply-To`` and ``References`` at the first one, with ``Re: ``
in front of the subject. Ids are deterministic, so a message re-sent after a
crash (the outbox sends again anything it was sending) is the same message to
mail clients, which drop the duplicate.

Sending is not here: :class:`watcher.alerts.email.SmtpMailer` takes the finished message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

from watcher.alerts.email_text import (
    ELLIPSIS,
    FONT,
    ID_UNSAFE,
    KIND_COLOURS,
    KIND_LABELS,
    LINK_COLOUR,
    MUTED,
    PLAYBOOK_LIMIT,
    RESOLVED_COLOUR,
    STATE_COLOURS,
    SUBJECT_LIMIT,
    TEXT_COLOUR,
    TITLE_LIMIT,
    UNKNOWN_COLOUR,
    UPDATE_LIMIT,
    clean_text,
    e,
    header_value,
    markdown_to_html,
    markdown_to_text,
    message_id,
    safe_url,
    sender_domain,
    thread_tag,
)
from watcher.alerts.model import Alert, AlertAction, Alternative
from watcher.i18n import format_time, has, reason_words, t


def _is_resolved(alert: Alert) -> bool:
    return alert.state == "resolved" or alert.action is AlertAction.RESOLVED


def _is_maintenance(alert: Alert) -> bool:
    return alert.is_maintenance or alert.kind == "maintenance"


def _maintenance_phase(alert: Alert) -> str:
    """``completed``, ``in_progress`` or ``scheduled`` (see :func:`_phase_words`)."""
    if _is_resolved(alert) or alert.status in ("completed", "resolved"):
        return "completed"
    if alert.status in ("in_progress", "in progress", "verifying", "identified", "monitoring"):
        return "in_progress"
    return "scheduled"


def _phase_words(alert: Alert) -> str:
    return t(alert.locale, f"email.maintenance_{_maintenance_phase(alert)}")


def _word(alert: Alert, group: str, value: str | None) -> str:
    """A vendor's status, impact or state word in the alert's language; unknown words as given."""
    value = (value or "unknown").strip()
    key = f"{group}.{value.lower().replace(' ', '_')}"
    return t(alert.locale, key) if has(alert.locale, key) else value


def _kind(alert: Alert) -> str:
    return t(alert.locale, f"kind_lc.{alert.kind if alert.kind in KIND_LABELS else 'unknown'}")


def _when(alert: Alert, iso: str | None) -> str:
    return clean_text(format_time(iso, alert.locale, alert.timezone), 80)


def state_words(alert: Alert) -> str:
    """The state as shown in the subject's parentheses: open, acknowledged by X, resolved after 1h 12m."""
    loc = alert.locale
    if _is_resolved(alert):
        if alert.duration:
            return t(loc, "email.state_resolved_after", duration=header_value(alert.duration, 40))
        return t(loc, "email.state_resolved")
    if alert.acknowledged_by:
        return t(loc, "email.state_acknowledged", who=header_value(alert.acknowledged_by, 60))
    if alert.action is AlertAction.REMINDER:
        return t(loc, "email.state_open_reminder")
    if alert.action is AlertAction.ESCALATION:
        return t(loc, "email.state_open_escalated")
    return t(loc, "email.state_open")


def _maintenance_window(alert: Alert) -> str:
    if not (alert.scheduled_for or alert.scheduled_until):
        return ""
    return f"{_when(alert, alert.scheduled_for) or '?'} → {_when(alert, alert.scheduled_until) or '?'}"


# -- subject -----------------------------------------------------------------------------------


def render_subject(alert: Alert, seq: int | str = 0) -> str:
    """``[watcher] OpenAI outage: Elevated error rates (open)``; ``Re: `` for follow-ups; one line, capped."""
    loc = alert.locale
    prefix = t(
        loc, "email.subject_prefix_test" if alert.action is AlertAction.TEST else "email.subject_prefix"
    )
    colon = " : " if loc == "fr" else ": "
    vendor = header_value(alert.vendor_name or alert.vendor, 60)
    title = header_value(alert.title, SUBJECT_LIMIT)
    if _is_maintenance(alert):
        phase = _maintenance_phase(alert)
        state = header_value(_maintenance_window(alert)) if phase == "scheduled" else ""
        if phase == "completed" and alert.duration:
            state = t(loc, "email.after", duration=header_value(alert.duration, 40))
        head = f"{prefix} {vendor} {_phase_words(alert)}{colon}"
    else:
        kind = _kind(alert)
        state = state_words(alert)
        head = f"{prefix} {vendor} {kind}{colon}"
        if alert.quiet:
            head = f"{prefix} {t(loc, 'email.subject_notice')} {vendor} {kind}{colon}"
    if isinstance(seq, int) and seq > 0:
        head = "Re: " + head
    tail = f" ({state})" if state else ""
    room = SUBJECT_LIMIT - len(head) - len(tail)
    if len(title) > room:
        title = title[: max(0, room - 1)].rstrip() + ELLIPSIS
    return header_value(head + title + tail, SUBJECT_LIMIT)


def _alternative_line(a: Alternative, alert: Alert) -> str:
    colon = " : " if alert.locale == "fr" else ": "
    line = f"{clean_text(a.name, 80)}{colon}{clean_text(_word(alert, 'state', a.state), 40)}"
    if a.reason:
        line += f" ({clean_text(reason_words(a.reason, alert.locale), 200)})"
    if a.latency_ms is not None:
        line += f", {a.latency_ms:.0f} ms"
    if a.note:
        line += f". {clean_text(a.note, 160)}"
    return line


def _vendor(alert: Alert) -> str:
    return (
        clean_text(alert.vendor_name, 60)
        or clean_text(alert.vendor, 60)
        or t(alert.locale, "common.the_vendor")
    )


def _links(alert: Alert) -> list[tuple[str, str]]:
    vendor = _vendor(alert)
    out: list[tuple[str, str]] = []
    for url, label in (
        (
            None if alert.url == alert.status_page else alert.url,
            t(alert.locale, "common.vendor_incident_named", vendor=vendor),
        ),
        (alert.status_page, t(alert.locale, "common.status_page", vendor=vendor)),
        (alert.incident_url, t(alert.locale, "email.this_incident")),
    ):
        u = safe_url(url)
        if u and all(u != seen for seen, _ in out):
            out.append((u, label))
    return out


def _facts(alert: Alert) -> list[tuple[str, str]]:
    """(label, value) rows shown in both parts, values as clean text (not escaped)."""
    loc = alert.locale
    rows: list[tuple[str, str]] = []
    if _is_maintenance(alert):
        window = _maintenance_window(alert)
        if window:
            rows.append((t(loc, "email.field_scheduled"), window))
    rows.append((t(loc, "email.field_vendor_status"), clean_text(_word(alert, "status", alert.status), 60)))
    if alert.impact:
        rows.append((t(loc, "email.field_impact"), clean_text(_word(alert, "impact", alert.impact), 60)))
    if alert.components:
        rows.append(
            (t(loc, "email.field_affected"), clean_text(", ".join(str(c) for c in alert.components), 1000))
        )
    if alert.scope:
        rows.append((t(loc, "email.field_for_you"), clean_text(alert.scope, 700)))
    if alert.started_at:
        rows.append((t(loc, "email.field_started"), _when(alert, alert.started_at)))
    if alert.resolved_at:
        rows.append((t(loc, "email.field_resolved"), _when(alert, alert.resolved_at)))
    if alert.duration:
        rows.append((t(loc, "email.field_duration"), clean_text(alert.duration, 40)))
    if alert.acknowledged_by:
        ack = clean_text(alert.acknowledged_by, 80)
        if alert.acknowledged_at:
            ack = t(loc, "email.acknowledged_at", who=ack, when=_when(alert, alert.acknowledged_at))
        if alert.ack_reason:
            ack += f": {clean_text(alert.ack_reason, 300)}"
        rows.append((t(loc, "email.field_acknowledged"), ack))
    if alert.reason:
        rows.append((t(loc, "email.field_why"), clean_text(alert.reason, 300)))
    return rows


def _headline(alert: Alert) -> str:
    vendor = _vendor(alert)
    if _is_maintenance(alert):
        what = _phase_words(alert).capitalize()
    else:
        what = _kind(alert)
        what = what[:1].upper() + what[1:]
    test = t(alert.locale, "common.test") + " · " if alert.action is AlertAction.TEST else ""
    return f"{test}{vendor} · {what} · {state_words(alert)}"


def _has_heading(markdown: str) -> bool:
    """Whether the playbook opens with its own ``#`` heading (then we do not add "What to do")."""
    return bool(re.match(r"\s{0,3}#{1,6}\s", markdown.lstrip("\n")))


def _can_ack(alert: Alert) -> str | None:
    """The acknowledge URL when a button makes sense (open, not yet acknowledged, http(s) link)."""
    if _is_resolved(alert) or alert.acknowledged_by or alert.quiet:
        return None
    return safe_url(alert.ack_url)


def render_text(alert: Alert) -> str:
    """The text/plain part: complete on its own."""
    loc = alert.locale
    out: list[str] = [_headline(alert), clean_text(alert.title, TITLE_LIMIT), ""]
    if alert.event_text:
        out += [t(loc, "email.what_changed", text=clean_text(alert.event_text, 300)), ""]
    ack = _can_ack(alert)
    if ack:
        out += [t(loc, "email.acknowledge_hint"), ack, ""]
    sep = " :" if loc == "fr" else ":"
    width = max(len(label) for label, _ in _facts(alert))
    out += [f"{label + sep:<{width + len(sep)}} {value}" for label, value in _facts(alert)]
    out.append("")
    update = clean_text(alert.latest_update, UPDATE_LIMIT)
    if update:
        out.append(t(loc, "common.latest_update", vendor=_vendor(alert)) + (" :" if loc == "fr" else ":"))
        out += ["> " + line if line else ">" for line in update.split("\n")]
        out.append("")
    playbook = clean_text(alert.playbook, PLAYBOOK_LIMIT)
    colon = " :" if loc == "fr" else ":"
    if playbook:
        what = t(loc, "email.what_to_do")
        out += ([] if _has_heading(playbook) else [what, "-" * len(what)]) + [markdown_to_text(playbook), ""]
    if alert.alternatives:
        out.append(t(loc, "email.other_vendors") + colon)
        out += [f"- {_alternative_line(a, alert)}" for a in alert.alternatives[:30]]
        out.append("")
    links = _links(alert)
    if links:
        out.append(t(loc, "email.links") + colon)
        out += [f"- {label}{colon} {url}" for url, label in links]
        out.append("")
    out += ["-- ", t(loc, "email.footer_1"), t(loc, "email.footer_2")]
    return "\n".join(out) + "\n"


# -- HTML ----------------------------------------------------------------------------------------


def _button(url: str, label: str) -> str:
    """A bulletproof-ish button: a coloured table cell (Outlook) holding a padded link (everyone else)."""
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" style="margin:4px 0 18px;">'
        '<tr><td bgcolor="#0c66e4" style="background:#0c66e4;border-radius:4px;">'
        f'<a href="{e(url)}" target="_blank" rel="noopener noreferrer" '
        f'style="display:inline-block;padding:12px 28px;font-family:{FONT};font-size:16px;'
        f'font-weight:bold;color:#ffffff;text-decoration:none;border-radius:4px;">{e(label)}</a>'
        "</td></tr></table>"
    )


def _section_title(text: str) -> str:
    return (
        f'<h2 style="font-family:{FONT};font-size:16px;line-height:1.3;color:{TEXT_COLOUR};'
        f'margin:22px 0 8px;">{e(text)}</h2>'
    )


def _facts_html(alert: Alert) -> str:
    rows = "".join(
        f'<tr><td valign="top" style="padding:3px 14px 3px 0;color:{MUTED};white-space:nowrap;">{e(label)}</td>'
        f'<td valign="top" style="padding:3px 0;">{e(value)}</td></tr>'
        for label, value in _facts(alert)
    )
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        f'style="font-family:{FONT};font-size:14px;line-height:1.4;color:{TEXT_COLOUR};margin:0 0 8px;">'
        f"{rows}</table>"
    )


def _alternatives_html(alts: tuple[Alternative, ...], alert: Alert) -> str:
    rows = []
    for a in alts[:30]:
        colour = STATE_COLOURS.get(str(a.state), MUTED)
        latency = f"{a.latency_ms:.0f} ms" if a.latency_ms is not None else ""
        rows.append(
            "<tr>"
            f'<td valign="top" style="padding:4px 12px 4px 0;font-weight:bold;">{e(clean_text(a.name, 80))}</td>'
            f'<td valign="top" style="padding:4px 12px 4px 0;color:{colour};white-space:nowrap;">'
            f"&#9679; {e(clean_text(_word(alert, 'state', a.state), 40))}</td>"
            f'<td valign="top" style="padding:4px 12px 4px 0;color:{MUTED};">{e(clean_text(reason_words(a.reason, alert.locale), 200))}'
            + (f"<br>{e(clean_text(a.note, 160))}" if a.note else "")
            + "</td>"
            f'<td valign="top" style="padding:4px 0;color:{MUTED};white-space:nowrap;">{e(latency)}</td>'
            "</tr>"
        )
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        f'style="font-family:{FONT};font-size:14px;line-height:1.4;color:{TEXT_COLOUR};">{"".join(rows)}</table>'
    )


def render_html(alert: Alert, subject: str = "") -> str:
    """The text/html part: table layout, inline CSS, every value escaped."""
    if _is_resolved(alert):
        colour = RESOLVED_COLOUR
    else:
        colour = KIND_COLOURS.get(
            alert.kind, KIND_COLOURS["maintenance"] if _is_maintenance(alert) else UNKNOWN_COLOUR
        )
    body: list[str] = [
        f'<h1 style="font-family:{FONT};font-size:21px;line-height:1.3;color:{TEXT_COLOUR};margin:0 0 6px;">'
        f"{e(clean_text(alert.title, TITLE_LIMIT))}</h1>"
    ]
    if alert.event_text:
        body.append(f'<p style="margin:0 0 14px;color:{MUTED};">{e(clean_text(alert.event_text, 300))}</p>')
    ack = _can_ack(alert)
    if ack:
        body.append(_button(ack, t(alert.locale, "email.acknowledge")))
    elif alert.acknowledged_by and not _is_resolved(alert):
        body.append(
            f'<p style="margin:0 0 14px;padding:8px 12px;background:#e9f2ff;border-radius:4px;">'
            f"{e(t(alert.locale, 'email.acknowledged_by'))} <strong>{e(clean_text(alert.acknowledged_by, 80))}</strong></p>"
        )
    body.append(_facts_html(alert))
    update = clean_text(alert.latest_update, UPDATE_LIMIT)
    if update:
        body.append(_section_title(t(alert.locale, "common.latest_update", vendor=_vendor(alert))))
        body.append(
            f'<blockquote style="margin:0 0 10px;padding:8px 14px;border-left:4px solid {colour};'
            f'background:#f7f8f9;color:{TEXT_COLOUR};white-space:pre-wrap;">{e(update)}</blockquote>'
        )
    if alert.playbook.strip():
        if not _has_heading(alert.playbook):
            body.append(_section_title(t(alert.locale, "email.what_to_do")))
        body.append(
            f'<div style="font-family:{FONT};font-size:15px;line-height:1.5;">{markdown_to_html(alert.playbook)}</div>'
        )
    if alert.alternatives:
        body.append(_section_title(t(alert.locale, "email.other_vendors")))
        body.append(_alternatives_html(alert.alternatives, alert))
    links = _links(alert)
    if links:
        body.append(
            '<p style="margin:22px 0 0;">'
            + " &nbsp;·&nbsp; ".join(
                f'<a href="{e(url)}" target="_blank" rel="noopener noreferrer" '
                f'style="color:{LINK_COLOUR};text-decoration:underline;">{e(label)}</a>'
                for url, label in links
            )
            + "</p>"
        )
    return (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(subject)}</title></head>"
        '<body style="margin:0;padding:0;background:#f4f5f7;">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="background:#f4f5f7;"><tr><td align="center" style="padding:20px 10px;">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" '
        'style="width:100%;max-width:600px;background:#ffffff;border:1px solid #dfe1e6;border-radius:6px;">'
        f'<tr><td bgcolor="{colour}" style="background:{colour};padding:12px 22px;font-family:{FONT};'
        f'font-size:14px;font-weight:bold;color:#ffffff;letter-spacing:0.3px;border-radius:6px 6px 0 0;">'
        f"{e(_headline(alert))}</td></tr>"
        f'<tr><td style="padding:20px 22px;font-family:{FONT};font-size:15px;line-height:1.5;color:{TEXT_COLOUR};">'
        + "\n".join(body)
        + "</td></tr>"
        f'<tr><td style="padding:12px 22px 18px;font-family:{FONT};font-size:12px;line-height:1.4;'
        f'color:{MUTED};border-top:1px solid #ebecf0;">'
        f"{e(t(alert.locale, 'email.footer_1'))} {e(t(alert.locale, 'email.footer_2'))}</td></tr>"
        "</table></td></tr></table></body></html>\n"
    )


# -- the message ---------------------------------------------------------------------------------


def render_email(
    alert: Alert,
    *,
    sender: str,
    recipients: list[str],
    seq: int | str,
    domain: str,
    now: datetime | None = None,
) -> EmailMessage:
    """The complete message for ``recipients``; ``seq`` 0 opens the thread (see :func:`message_id`).

    Pure: no I/O. ``now`` (default: the current time) only sets ``Date``. No
    ``List-Id``/``Precedence``: this is not a mailing list. ``X-Watcher-Incident``
    and ``X-Watcher-Vendor`` let people write filters instead.
    """
    domain = sender_domain(f"x@{domain}")
    tag = thread_tag(sender, alert.vendor, recipients)
    subject = render_subject(alert, seq)
    msg = EmailMessage()
    msg["Subject"] = subject
    name, addr = parseaddr(header_value(sender))
    msg["From"] = formataddr((header_value(name, 80), addr)) if name else addr
    msg["To"] = ", ".join(header_value(r) for r in recipients)
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = message_id(alert.incident_id, seq, tag=tag, domain=domain)
    if isinstance(seq, int) and seq > 0:
        root = message_id(alert.incident_id, 0, tag=tag, domain=domain)
        msg["In-Reply-To"] = root
        msg["References"] = root
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Watcher-Incident"] = str(int(alert.incident_id))
    msg["X-Watcher-Vendor"] = ID_UNSAFE.sub("-", str(alert.vendor))[:60]
    # quoted-printable: readable in raw form, and spam filters like it better than base64 text
    msg.set_content(render_text(alert), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(render_html(alert, subject), subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def render_standalone(
    *,
    subject: str,
    text: str,
    html_body: str,
    sender: str,
    recipients: list[str] | tuple[str, ...] = (),
    id_prefix: str = "watcher-report",
    now: datetime | None = None,
) -> EmailMessage:
    """A message about no incident (the weekly report): ``multipart/alternative``, not threaded.

    ``subject``, ``text`` and ``html_body`` are rendered by the caller (HTML
    already escaped); the headers get the same hygiene as alerts.
    """
    from email.utils import make_msgid

    msg = EmailMessage()
    msg["Subject"] = header_value(subject, SUBJECT_LIMIT)
    name, addr = parseaddr(header_value(sender))
    msg["From"] = formataddr((name, addr)) if name else addr
    if recipients:
        msg["To"] = ", ".join(header_value(r) for r in recipients)
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = make_msgid(id_prefix, domain=sender_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html_body, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg
