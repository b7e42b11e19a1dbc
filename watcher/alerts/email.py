"""Email alerts: render an :class:`Alert` as a threaded multipart message, send it over SMTP.

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

Sending (:class:`SmtpMailer`) uses :mod:`smtplib` in the calling (worker)
thread; every failure becomes a :class:`TransportError` with words an admin can
act on, permanent when a retry cannot help (login refused, recipient unknown,
configuration contradictions) and transient otherwise. The password never
appears in a message or a log line.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import smtplib
import socket
import ssl as ssl_lib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

from watcher.alerts.model import Alert, AlertAction, Alternative, Delivery, TransportError
from watcher.i18n import format_time, has, reason_words, t

log = logging.getLogger("watcher.alerts.email")

SUBJECT_LIMIT = 200
TITLE_LIMIT = 500
UPDATE_LIMIT = 4000
PLAYBOOK_LIMIT = 30000
ELLIPSIS = "…"

KIND_LABELS: dict[str, str] = {
    "outage": "outage",
    "degradation": "degradation",
    "api_change": "API change",
    "hallucination_spike": "hallucination spike",
    "maintenance": "maintenance",
}

# (banner colour) per kind; resolved is always green
KIND_COLOURS: dict[str, str] = {
    "outage": "#c9372c",
    "degradation": "#b65c02",
    "api_change": "#0c66e4",
    "hallucination_spike": "#6e5dc6",
    "maintenance": "#626f86",
}
RESOLVED_COLOUR = "#1f845a"
UNKNOWN_COLOUR = "#44546f"

STATE_COLOURS: dict[str, str] = {
    "operational": "#1f845a",
    "degraded": "#b65c02",
    "degraded_performance": "#b65c02",
    "partial_outage": "#c9372c",
    "major_outage": "#ae2e24",
    "outage": "#ae2e24",
    "maintenance": "#626f86",
    "under_maintenance": "#626f86",
}

FONT = "Arial,Helvetica,sans-serif"
TEXT_COLOUR = "#172b4d"
MUTED = "#5e6c84"
LINK_COLOUR = "#0c66e4"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]+")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


# -- small helpers -------------------------------------------------------------------------------


def e(value: Any) -> str:
    """HTML-escape anything (quotes too: values also land in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def header_value(value: Any, limit: int | None = None) -> str:
    """One line for a header: control characters (CR, LF, NUL, …) become spaces, runs collapse."""
    text = " ".join(_HEADER_UNSAFE.sub(" ", "" if value is None else str(value)).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + ELLIPSIS
    return text


def clean_text(value: Any, limit: int | None = None) -> str:
    """Text for the plain part and for escaping into HTML: no control characters but newline and tab."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.replace("\t", "    "))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + ELLIPSIS
    return text.strip()


def safe_url(url: Any) -> str | None:
    """``url`` if it is an absolute http(s) URL with a host and no whitespace or control characters."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or len(url) > 3000 or re.search(r"[\s\x00-\x1f\x7f<>\"'`\\]", url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def when(iso: str | None) -> str:
    """An ISO 8601 time as ``2026-09-15 14:03 UTC``; unparsable input is shown as given (cleaned)."""
    if not iso:
        return ""
    try:
        dt = datetime.fromisoformat(str(iso).strip())
    except ValueError:
        return header_value(iso, 60)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def sender_domain(sender: str) -> str:
    """The domain of ``sender`` ("Watcher <alerts@example.com>" → "example.com"), safe for a Message-ID."""
    addr = parseaddr(header_value(sender))[1]
    domain = addr.rpartition("@")[2].strip().lower().rstrip(".")
    if domain and not re.fullmatch(r"[a-z0-9.-]+", domain):
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
    if not domain or not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", domain):
        return "watcher.invalid"
    return domain


def thread_tag(sender: str, vendor: str, recipients: list[str]) -> str:
    """Short stable hash that keeps ids of different threads about one incident apart (see :func:`message_id`)."""
    who = "\n".join(sorted({r.strip().lower() for r in recipients}))
    key = f"{parseaddr(header_value(sender))[1].lower()}\n{vendor}\n{who}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def message_id(incident_id: int, seq: int | str, *, tag: str, domain: str) -> str:
    """The Message-ID of message ``seq`` about ``incident_id`` in the thread ``tag``.

    ``<watcher-incident-{id}-{tag}@{domain}>`` for ``seq`` 0 (the thread's
    root), ``<watcher-incident-{id}-{tag}-{seq}@{domain}>`` after that.

    Why the tag: the outbox keeps one thread per (incident, recipient) with its
    own ``seq``, so the same ``(incident, seq)`` goes to different recipients
    with different content (an escalation is the *first* message the next
    on-call person gets). Were the ids equal, a mailbox reached by two of those
    addresses (aliases, a group, forwarding) would drop one of them as a
    duplicate. The tag is the first 10 hex digits of SHA-256 over the sender
    address, the vendor and the sorted recipient addresses; it also keeps two
    watcher installations that share a mail domain apart as long as they send
    from different addresses (incident ids are per installation: two installs
    sending from the *same* address to the same people could collide).

    ``seq`` that is not an int (``watcher test-alert`` passes a timestamp
    string) gives a standalone id ``<watcher-incident-{id}-{tag}-{seq}@…>``
    with the unsafe characters dropped.
    """
    base = f"watcher-incident-{int(incident_id)}-{tag}"
    if isinstance(seq, int) and seq == 0:
        return f"<{base}@{domain}>"
    token = _ID_UNSAFE.sub("", str(seq))[:40] or "x"
    return f"<{base}-{token}@{domain}>"


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
    prefix = t(loc, "email.subject_prefix_test" if alert.action is AlertAction.TEST else "email.subject_prefix")
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


# -- Markdown ---------------------------------------------------------------------------------


class _SafeMarkdown(MarkdownIt):
    """CommonMark, raw HTML escaped, no images, links only to http(s), newlines kept as ``<br>``."""

    def validateLink(self, url: str) -> bool:  # noqa: N802 (markdown-it's API name)
        return safe_url(url) is not None


def _markdown() -> _SafeMarkdown:
    # breaks: a newline in the playbook is a line break, as in Slack and in the plain part
    md = _SafeMarkdown("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.disable("image")
    return md


_MD = _markdown()

_MD_STYLES: dict[str, str] = {
    "heading_open": f"font-family:{FONT};color:{TEXT_COLOUR};font-size:16px;line-height:1.3;margin:16px 0 6px;",
    "paragraph_open": "margin:0 0 10px;",
    "bullet_list_open": "margin:0 0 10px;padding-left:22px;",
    "ordered_list_open": "margin:0 0 10px;padding-left:22px;",
    "list_item_open": "margin:0 0 4px;",
    "blockquote_open": f"margin:0 0 10px;padding:6px 12px;border-left:3px solid #dfe1e6;color:{MUTED};",
    "link_open": f"color:{LINK_COLOUR};text-decoration:underline;",
    "code_inline": "font-family:Consolas,Menlo,monospace;background:#f1f2f4;padding:1px 4px;border-radius:3px;",
    "fence": "font-family:Consolas,Menlo,monospace;background:#f1f2f4;padding:8px;white-space:pre-wrap;",
    "code_block": "font-family:Consolas,Menlo,monospace;background:#f1f2f4;padding:8px;white-space:pre-wrap;",
    "hr": "border:0;border-top:1px solid #dfe1e6;margin:14px 0;",
}


def markdown_to_html(text: str) -> str:
    """Our playbook Markdown as email-safe HTML with inline styles (see the module docstring)."""
    tokens = _MD.parse(clean_text(text, PLAYBOOK_LIMIT))
    stack = list(tokens)
    while stack:
        tok = stack.pop()
        if tok.children:
            stack.extend(tok.children)
        style = _MD_STYLES.get(tok.type)
        if style:
            tok.attrSet("style", style)
        if tok.type == "link_open":
            tok.attrSet("rel", "noopener noreferrer")
            tok.attrSet("target", "_blank")
    return _MD.renderer.render(tokens, _MD.options, {})


# -- plain text --------------------------------------------------------------------------------

_MD_HEADING = re.compile(r"(?m)^[ ]{0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\((https?://[^()\s]+)\)")
_MD_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


def markdown_to_text(md: str) -> str:
    """The playbook's Markdown as plain text: headings underlined, no ``#`` or ``**`` left to read."""

    def heading(m: re.Match) -> str:
        title = _MD_BOLD.sub(r"\2", m.group(1))
        return title + "\n" + "=" * min(len(title), 72)

    text = _MD_HEADING.sub(heading, md)
    text = _MD_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) != m.group(2) else m.group(2), text)
    return _MD_BOLD.sub(r"\2", text)



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
    return clean_text(alert.vendor_name, 60) or clean_text(alert.vendor, 60) or t(alert.locale, "common.the_vendor")


def _links(alert: Alert) -> list[tuple[str, str]]:
    vendor = _vendor(alert)
    out = []
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
        rows.append((t(loc, "email.field_affected"), clean_text(", ".join(str(c) for c in alert.components), 1000)))
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
    msg["X-Watcher-Vendor"] = _ID_UNSAFE.sub("-", str(alert.vendor))[:60]
    # quoted-printable: readable in raw form, and spam filters like it better than base64 text
    msg.set_content(render_text(alert), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(render_html(alert, subject), subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


# -- sending -----------------------------------------------------------------------------------


_STAGES = {
    "connect": "while connecting",
    "ehlo": "at EHLO",
    "starttls": "at STARTTLS",
    "login": "while logging in",
    "send": "while sending the message",
}

_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")


def _server_text(resp: bytes | str | None, limit: int = 200) -> str:
    if isinstance(resp, bytes):
        resp = resp.decode("utf-8", "replace")
    return header_value(resp or "", limit)


class SmtpMailer:
    """Sends alerts through one SMTP server (submission port 587 with STARTTLS, or 465 with implicit TLS).

    One connection per message: alerts are rare, and a fresh connection means
    no half-dead session to detect. ``timeout`` bounds the connect and each
    SMTP command. Credentials are sent only over TLS. ``ssl_context`` is for
    tests (trust a private CA); the default verifies the server against the
    system's CA bundle and checks its host name.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None,
        password: str | None,
        starttls: bool,
        ssl: bool,
        timeout: float,
        sender: str,
        ssl_context: ssl_lib.SSLContext | None = None,
    ):
        self.host = host
        self.port = int(port)
        self.username = username or None
        self._password = password or None
        self.starttls = bool(starttls)
        self.ssl = bool(ssl)
        self.timeout = float(timeout)
        self.sender = sender
        self.ssl_context = ssl_context if ssl_context is not None else ssl_lib.create_default_context()

    def __repr__(self) -> str:  # never the password
        mode = "ssl" if self.ssl else ("starttls" if self.starttls else "plain")
        return f"SmtpMailer({self.host}:{self.port}, {mode}, user={self.username!r}, sender={self.sender!r})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def envelope_sender(self) -> str:
        return parseaddr(header_value(self.sender))[1]

    # -- public ---------------------------------------------------------------------------

    def send(self, alert: Alert, recipients: list[str], seq: int | str) -> Delivery:
        """Send one message; ``seq`` is 0 for the first message about this incident to these recipients.

        Returns ``Delivery(ref={"message_id": "<…>"})`` (plus ``"refused"`` when the
        server took the message for some recipients only: that counts as delivered
        and is logged as a warning). Raises :class:`TransportError`.
        """
        to = self._recipients(recipients)
        msg = render_email(
            alert, sender=self.sender, recipients=to, seq=seq, domain=sender_domain(self.sender)
        )
        mid = str(msg["Message-ID"])
        smtp = self._open()
        try:
            refused = smtp.send_message(msg, from_addr=self.envelope_sender, to_addrs=to)
        except Exception as err:
            smtp.close()
            raise self._error(err, "send", to) from None
        self._quit(smtp)
        ref: dict[str, Any] = {"message_id": mid}
        if refused:
            shown = ", ".join(f"{r} ({c} {_server_text(t, 100)})" for r, (c, t) in refused.items())
            log.warning(
                "SMTP server %s accepted alert %s for some recipients only; refused: %s",
                self.where,
                mid,
                self._scrub(shown),
            )
            ref["refused"] = sorted(refused)
        log.info("email %s sent to %s via %s", mid, ", ".join(to), self.where)
        return Delivery(ref=ref)

    def check(self) -> str:
        """Connect, EHLO, STARTTLS and log in, then QUIT: what ``watcher check`` shows. Raises TransportError."""
        smtp = self._open()
        tls = "TLS" if self.ssl else ("STARTTLS" if self.starttls else "no TLS")
        self._quit(smtp)
        if self.username:
            return f"{self.where} accepted login as {self.username} ({tls})"
        return f"{self.where} answered ({tls}, no login configured)"

    # -- internals --------------------------------------------------------------------------

    def _preflight(self) -> None:
        if not self.host:
            raise TransportError("email.host is not set", permanent=True)
        addr = self.envelope_sender
        if not _ADDRESS.fullmatch(addr or "") or _HEADER_UNSAFE.search(self.sender or ""):
            raise TransportError(
                f"email.sender {header_value(self.sender, 100)!r} is not an email address", permanent=True
            )
        if self.username:
            if _HEADER_UNSAFE.search(self.username):
                raise TransportError("email.username contains control characters", permanent=True)
            if not (self.ssl or self.starttls):
                raise TransportError(
                    "email.starttls is off: refusing to send the password in clear "
                    "(turn email.starttls on, or email.ssl for port 465)",
                    permanent=True,
                )
            if not self._password:
                raise TransportError(
                    f"email.username is {self.username!r} but no password is set: "
                    "set WATCHER_EMAIL__PASSWORD or email.password_file",
                    permanent=True,
                )

    def _recipients(self, recipients: list[str]) -> list[str]:
        """Bare addresses ("Ana <ana@x>" → "ana@x"), deduplicated; anything else is a permanent error."""
        out: list[str] = []
        for given in recipients or []:
            text = str(given)
            addr = parseaddr(text)[1] if not _HEADER_UNSAFE.search(text) else ""
            if not _ADDRESS.fullmatch(addr):
                raise TransportError(
                    f"{header_value(text, 100)!r} is not an email address: check the route's emails",
                    permanent=True,
                )
            if addr.lower() not in (o.lower() for o in out):
                out.append(addr)
        if not out:
            raise TransportError("no email recipient given", permanent=True)
        return out

    def _open(self) -> smtplib.SMTP:
        """A connected (TLS where configured), greeted and logged-in session, or TransportError."""
        self._preflight()
        stage = "connect"
        smtp: smtplib.SMTP | None = None
        try:
            if self.ssl:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            stage = "ehlo"
            smtp.ehlo()
            if self.starttls and not self.ssl:
                stage = "starttls"
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username:
                stage = "login"
                smtp.login(self.username, self._password or "")
            return smtp
        except Exception as err:
            if smtp is not None:
                smtp.close()
            raise self._error(err, stage, []) from None

    def _quit(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):  # the work is done; a rude goodbye does not matter
            smtp.close()

    def _scrub(self, text: str) -> str:
        if self._password and self._password in text:
            text = text.replace(self._password, "***")
        return text

    def _reach(self, why: str) -> TransportError:
        return TransportError(f"cannot reach SMTP server {self.where} ({why})")

    def _error(self, err: BaseException, stage: str, recipients: list[str]) -> TransportError:
        te = self._map(err, stage, recipients)
        te.message = self._scrub(te.message)
        te.args = (te.message,)
        return te

    def _map(self, err: BaseException, stage: str, recipients: list[str]) -> TransportError:  # noqa: C901
        where, user = self.where, self.username
        during = _STAGES.get(stage, stage)
        hint = ""
        if stage == "connect" and self.port == 465 and not self.ssl:
            hint = ": port 465 expects email.ssl = true"
        elif stage == "connect" and self.port == 587 and self.ssl:
            hint = ": port 587 expects email.ssl = false with email.starttls = true"
        who = ", ".join(recipients) or "the recipients"
        if isinstance(err, TransportError):
            return err
        if isinstance(err, smtplib.SMTPAuthenticationError):
            text = f"{err.smtp_code} {_server_text(err.smtp_error)}"
            if 400 <= err.smtp_code < 500:
                return TransportError(
                    f"SMTP login for user {user} failed for now at {where} ({text}); will retry"
                )
            return TransportError(
                f"SMTP login refused for user {user}: check email.username / WATCHER_EMAIL__PASSWORD ({text})",
                permanent=True,
            )
        if isinstance(err, smtplib.SMTPNotSupportedError):
            if stage == "starttls":
                return TransportError(
                    f"SMTP server {where} does not offer STARTTLS: for implicit TLS (port 465) set "
                    "email.ssl = true; to send unencrypted on a trusted network set email.starttls = false "
                    "and no email.username",
                    permanent=True,
                )
            if stage == "login":
                return TransportError(
                    f"SMTP server {where} does not offer login (AUTH) on this connection: "
                    "unset email.username if it needs none, or check email.port / email.starttls",
                    permanent=True,
                )
            return TransportError(f"SMTP server {where} does not support {stage}: {err}", permanent=True)
        if isinstance(err, smtplib.SMTPRecipientsRefused):
            parts = [f"{r} ({c} {_server_text(t, 120)})" for r, (c, t) in err.recipients.items()]
            transient = any(400 <= c < 500 for c, _ in err.recipients.values())
            if transient:
                return TransportError(
                    f"SMTP server {where} deferred recipient(s) {', '.join(parts)}; will retry"
                )
            return TransportError(
                f"SMTP server {where} refused recipient(s) {', '.join(parts)}: check the address in the route",
                permanent=True,
            )
        if isinstance(err, smtplib.SMTPSenderRefused):
            code, text = err.smtp_code, _server_text(err.smtp_error)
            low = text.lower()
            if code >= 500 and "starttls" in low:
                return TransportError(
                    f"SMTP server {where} requires STARTTLS ({code} {text}): set email.starttls = true",
                    permanent=True,
                )
            if code >= 500 and ("auth" in low or code == 530):
                return TransportError(
                    f"SMTP server {where} requires a login ({code} {text}): "
                    "set email.username and WATCHER_EMAIL__PASSWORD",
                    permanent=True,
                )
            if code >= 500:
                return TransportError(
                    f"SMTP server {where} refused the sender {err.sender} ({code} {text}): "
                    "set email.sender to an address this account may send as",
                    permanent=True,
                )
            return TransportError(
                f"SMTP server {where} deferred the sender {err.sender} ({code} {text}); will retry"
            )
        if isinstance(err, smtplib.SMTPDataError):
            code, text = err.smtp_code, _server_text(err.smtp_error)
            if code >= 500:
                return TransportError(
                    f"SMTP server {where} rejected the message to {who} ({code} {text})", permanent=True
                )
            return TransportError(
                f"SMTP server {where} deferred the message to {who} ({code} {text}); will retry"
            )
        if isinstance(err, smtplib.SMTPConnectError):
            return self._reach(f"greeting refused: {err.smtp_code} {_server_text(err.smtp_error)}")
        if isinstance(err, smtplib.SMTPServerDisconnected):
            cause = err.__cause__ or err.__context__  # smtplib wraps read errors, timeouts included
            if isinstance(cause, TimeoutError):
                return self._reach(f"no answer within {self.timeout:g}s {during}{hint}")
            if isinstance(cause, OSError) and cause.strerror:
                return self._reach(f"{cause.strerror.lower()} {during}")
            return self._reach(f"connection closed by the server {during}")
        if isinstance(err, smtplib.SMTPResponseException):
            code, text = err.smtp_code, _server_text(err.smtp_error)
            return TransportError(
                f"SMTP server {where} answered {code} {text} {during}", permanent=code >= 500
            )
        if isinstance(err, ssl_lib.SSLCertVerificationError):
            why = err.verify_message or err.reason or "verification failed"
            return TransportError(
                f"TLS certificate of {self.host} not trusted ({why}): fix the server's certificate "
                "or make its CA trusted on this machine"
            )
        if isinstance(err, ssl_lib.SSLError):
            why = err.reason or err.__class__.__name__
            return TransportError(
                f"TLS with SMTP server {where} failed ({why}): check email.ssl (port 465) / "
                "email.starttls (port 587) match the port"
            )
        if isinstance(err, socket.gaierror):
            return self._reach("host name not found")
        if isinstance(err, ConnectionRefusedError):
            return self._reach("connection refused")
        if isinstance(err, TimeoutError):
            return self._reach(f"no answer within {self.timeout:g}s {during}{hint}")
        if isinstance(err, OSError):
            return self._reach(err.strerror or err.__class__.__name__)
        if isinstance(err, smtplib.SMTPException):
            return TransportError(f"SMTP error with {where} {during}: {_server_text(str(err))}")
        if isinstance(err, UnicodeError):
            return TransportError(
                f"the SMTP server {where} cannot take a non-ASCII address ({err.__class__.__name__})",
                permanent=True,
            )
        raise err
