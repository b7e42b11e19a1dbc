"""Turning an :class:`Alert` into Slack text and Block Kit blocks: pure functions, no I/O.

Security rule: every piece of text that did not come from this module is
escaped with :func:`escape_mrkdwn` before it reaches Slack. Slack's mrkdwn turns
``<!channel>``, ``<!here>``, ``<@U123>``, ``<#C1>`` and ``<http://evil|click>``
into pings and disguised links; vendor status pages (and anything quoted into
a playbook) are outside our control, so only this module may emit ``<…>``
sequences, and only for http(s) URLs and a known acknowledger's user id.

Size rule: Slack rejects (``invalid_blocks`` / ``msg_blocks_too_long``) a message
with a section text over 3000 characters, a field over 2000, a header over 150,
or more than 50 blocks. Everything here is cut to fit, with "…", rather than
trusting the inputs to be short; a rejected alert is worse than a truncated one.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from watcher import linear
from watcher.alerts.model import Alert, AlertAction
from watcher.i18n import format_time, has, t

SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
HEADER_LIMIT = 150
MAX_BLOCKS = 50
FALLBACK_LIMIT = 1000
ELLIPSIS = "…"
WORD_JOINER = "\u2060"

KINDS: dict[str, tuple[str, str, str]] = {
    # kind: (emoji, label, colour word)
    "outage": ("🔴", "Outage", "red"),
    "degradation": ("🟠", "Degradation", "orange"),
    "api_change": ("🔵", "API change", "blue"),
    "hallucination_spike": ("🟣", "Hallucination spike", "purple"),
    "maintenance": ("🛠️", "Maintenance", "grey"),
}
_UNKNOWN_KIND = ("⚪", "Incident", "white")
_RESOLVED_EMOJI = "✅"

_BROADCAST = re.compile(r"(?<!\w)@(channel|here|everyone)\b", re.IGNORECASE)
_USER_ID = re.compile(r"[UW][A-Z0-9]{6,20}")


# -- escaping --------------------------------------------------------------------------------


def escape_mrkdwn(text: str) -> str:
    """Make arbitrary text display literally in Slack mrkdwn.

    ``&``, ``<`` and ``>`` become entities (the three characters Slack's own
    escaping rules name), so no ``<!channel>``, ``<@U…>``, ``<#C…>`` or
    ``<url|label>`` can be formed; ``&lt;`` in the input becomes ``&amp;lt;``
    and still shows as typed. A bare ``@channel``/``@here``/``@everyone`` gets
    an invisible WORD JOINER (U+2060) after the ``@``: it only notifies when a
    message is sent with ``link_names``/``parse=full`` (we send neither), but a
    later change of ours, a Slack client quirk, or a human copy-pasting the text
    must not page a whole channel because a vendor wrote "@here" in an update.
    """
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@" + WORD_JOINER + m.group(1), text)


def safe_url(url: str | None) -> str | None:
    """The URL ready for ``<url|label>``, or None if it is not a plain http(s) URL.

    Characters that would end or split Slack's link syntax (``<>|``, spaces,
    control characters) are percent-encoded; ``&`` becomes ``&amp;`` as Slack
    expects inside angle brackets.
    """
    if not url or not isinstance(url, str):
        return None
    url = url.strip()
    if not re.match(r"(?i)https?://[^\s/?#<>|]", url) or len(url) > 2000:
        return None
    url = quote(url, safe="/:?#[]@!$&'()*+,;=%~-._")
    return url.replace("&", "&amp;")


def link(url: str | None, label: str) -> str:
    """``<url|label>`` for an http(s) URL (label escaped); just the escaped label otherwise."""
    u = safe_url(url)
    return f"<{u}|{escape_mrkdwn(label)}>" if u else escape_mrkdwn(label)


# -- Markdown → mrkdwn -----------------------------------------------------------------------

_LINK = re.compile(r"!?\[([^\]\n]*)\]\(\s*((?:[^()\s]|\([^()\s]*\))+)\s*\)")
_CODE = re.compile(r"`([^`\n]+)`")
# Linear-time (watcher.linear): a line of vendor text that is all "[" took seconds with re.
_LINK_OR_CODE = linear.compile(f"{_LINK.pattern}|{_CODE.pattern}")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_ORDERED = re.compile(r"^(\s*)(\d{1,9})[.)]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BOLD_MARK = "\x00B"


def _inline_text(text: str) -> str:
    """Escape a run of plain Markdown text, then map emphasis to mrkdwn."""
    text = escape_mrkdwn(text)
    text = _BOLD.sub(lambda m: _BOLD_MARK + m.group(2) + _BOLD_MARK, text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_BOLD_MARK, "*")


def _inline(text: str) -> str:
    """One line of Markdown: links and code spans are cut out first so their insides stay literal."""
    out: list[str] = []
    pos = 0
    for m in _LINK_OR_CODE.finditer(text):
        out.append(_inline_text(text[pos : m.start()]))
        if m.group(0).startswith("`"):
            out.append("`" + escape_mrkdwn(m.group(3)) + "`")
        else:
            label, url = m.group(1) or url_label(m.group(2)), m.group(2)
            if safe_url(url):
                out.append(link(url, label))
            else:  # not http(s): show it, do not link it
                out.append(escape_mrkdwn(f"{label} ({url})"))
        pos = m.end()
    out.append(_inline_text(text[pos:]))
    return "".join(out)


def url_label(url: str) -> str:
    return url.split("://", 1)[-1][:80]


def markdown_to_mrkdwn(md: str) -> str:
    """Convert our playbook Markdown to Slack mrkdwn, escaping all text.

    Supported: ``#`` headings (bold lines), ``**bold**``/``__bold__``,
    ``*italic*``, ``~~strike~~``, ``-``/``*``/``+`` bullets (``•``, nested ``◦``),
    ordered lists (kept as ``1.``), ``>`` quotes, fenced and inline code,
    ``[text](url)`` links (linked only for http/https), rules. Anything else is
    passed through as escaped text.
    """
    lines_out: list[str] = []
    in_fence = False
    for raw in (md or "").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE.match(raw):
            in_fence = not in_fence
            lines_out.append("```")
            continue
        if in_fence:
            lines_out.append(escape_mrkdwn(raw))
            continue
        if m := _HEADING.match(raw):
            body = _inline(m.group(1)).replace("*", "")
            lines_out.append(f"*{body}*" if body.strip() else "")
        elif _RULE.match(raw):
            lines_out.append("")
        elif m := _BULLET.match(raw):
            depth = len(m.group(1).expandtabs(4)) // 2
            lines_out.append("    " * depth + ("◦" if depth else "•") + " " + _inline(m.group(2)))
        elif m := _ORDERED.match(raw):
            depth = len(m.group(1).expandtabs(4)) // 3
            lines_out.append("    " * depth + f"{m.group(2)}. " + _inline(m.group(3)))
        elif m := _QUOTE.match(raw):
            lines_out.append("> " + _inline(m.group(1)))
        else:
            lines_out.append(_inline(raw.rstrip()))
    if in_fence:
        lines_out.append("```")
    text = "\n".join(lines_out)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


# -- sizes -------------------------------------------------------------------------------------


def _u16(s: str) -> int:
    """Length as Slack counts it at worst (UTF-16 code units, emoji count 2)."""
    return len(s.encode("utf-16-le")) // 2


def _safe_cut(text: str, n: int) -> str:
    """``text[:n]`` moved back so it does not end inside an ``&amp;`` entity or a ``<…>`` link."""
    cut = text[:n]
    amp = cut.rfind("&", max(0, n - 6))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:  # even at 0: a half link would show raw (or be rejected)
        cut = cut[:lt]
    return cut


def truncate(text: str, limit: int) -> str:
    """Fit already-escaped mrkdwn into ``limit`` (UTF-16 units), ending with "…" when cut."""
    if _u16(text) <= limit:
        return text
    return _safe_cut(text, _fit_len(text, limit - 1)).rstrip() + ELLIPSIS


def split_sections(mrkdwn: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split mrkdwn at line breaks into chunks of at most ``limit``; over-long lines are cut hard."""
    chunks: list[str] = []
    cur = ""
    for line in mrkdwn.split("\n"):
        while _u16(line) > limit:
            head = _safe_cut(line, _fit_len(line, limit)) or line[: _fit_len(line, limit)]
            if cur:
                chunks.append(cur)
                cur = ""
            chunks.append(head)
            line = line[len(head) :]
        candidate = f"{cur}\n{line}" if cur else line
        if _u16(candidate) > limit:
            chunks.append(cur)
            cur = line
        else:
            cur = candidate
    if cur.strip():
        chunks.append(cur)
    return [c for c in chunks if c.strip()]


def _fit_len(s: str, limit: int) -> int:
    """The longest prefix length of ``s`` whose UTF-16 length is at most ``limit`` (binary search)."""
    lo, hi = 0, min(len(s), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _u16(s[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _plain(text: str, limit: int) -> str:
    """Text for a ``plain_text`` object: no mrkdwn parsing there, but keep angle brackets out anyway."""
    text = re.sub(r"\s+", " ", str(text)).translate({ord("<"): "‹", ord(">"): "›"}).strip()
    text = _BROADCAST.sub(lambda m: "@" + WORD_JOINER + m.group(1), text)  # as escape_mrkdwn does
    return text if _u16(text) <= limit else text[: _fit_len(text, limit - 1)] + ELLIPSIS


# -- pieces of an alert -----------------------------------------------------------------------


def kind_parts(kind: str, locale: str = "en") -> tuple[str, str, str]:
    """(emoji, label, colour word) for an incident kind, in ``locale``."""
    emoji, _label, colour = KINDS.get(kind, _UNKNOWN_KIND)
    return emoji, t(locale, f"kind.{kind if kind in KINDS else 'unknown'}"), t(locale, f"colour.{colour}")


def word(alert: Alert, group: str, value: str | None) -> str:
    """A vendor's status, impact or state word in the alert's language (escaped); unknown words as given."""
    value = (value or "unknown").strip()
    key = f"{group}.{value.lower().replace(' ', '_')}"
    return t(alert.locale, key) if has(alert.locale, key) else value


def who(name: str | None) -> str:
    """A person as mrkdwn: a real mention for a Slack user id (``U…``), escaped text otherwise.

    The acknowledger comes from our own store (a Slack click records the user id,
    the CLI a name), never from a vendor, so a mention here is ours to make.
    """
    name = (name or "someone").strip()
    return f"<@{name}>" if _USER_ID.fullmatch(name) else escape_mrkdwn(name)


def state_text(alert: Alert) -> str:
    loc = alert.locale
    if alert.state == "resolved" or alert.action is AlertAction.RESOLVED:
        if alert.duration:
            return t(loc, "common.resolved_after", duration=escape_mrkdwn(alert.duration))
        return t(loc, "common.resolved")
    if alert.acknowledged_by:
        return t(loc, "common.acknowledged_by", who=who(alert.acknowledged_by))
    return t(loc, "common.open_not_acknowledged")


def _is_resolved(alert: Alert) -> bool:
    return alert.state == "resolved" or alert.action is AlertAction.RESOLVED


def fallback_text(alert: Alert) -> str:
    """The notification line (push, desktop banner, screen readers)."""
    loc = alert.locale
    emoji, _label, _ = kind_parts(alert.kind, loc)
    label = t(loc, f"kind_lc.{alert.kind if alert.kind in KINDS else 'unknown'}")
    colon = " : " if loc == "fr" else ": "
    head = f"{alert.vendor_name} {label}{colon}{alert.title}"
    if alert.action is AlertAction.TEST:
        head = t(loc, "common.test") + " " + head
    if alert.quiet:
        head = t(loc, "common.notice") + colon + head
    if _is_resolved(alert):
        text = f"{_RESOLVED_EMOJI} " + t(loc, "slack.fallback_resolved", head=escape_mrkdwn(head))
        if alert.duration:
            text += " " + t(loc, "slack.fallback_after", duration=escape_mrkdwn(alert.duration))
    else:
        text = f"{emoji} {escape_mrkdwn(head)}"
        if alert.acknowledged_by:
            text += " " + t(loc, "slack.fallback_acknowledged", who=who(alert.acknowledged_by))
    return truncate(" ".join(text.split()), FALLBACK_LIMIT)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}}


def _field(title: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": truncate(f"*{title}*\n{value}", FIELD_LIMIT)}


def _summary_blocks(alert: Alert) -> list[dict[str, Any]]:
    loc = alert.locale
    emoji, label, colour = kind_parts(alert.kind, loc)
    top = _RESOLVED_EMOJI if _is_resolved(alert) else emoji
    test = t(loc, "common.test") + " · " if alert.action is AlertAction.TEST else ""
    if alert.quiet:
        test += t(loc, "common.notice") + " · "  # touches nothing the team uses: no mention, reminder or escalation
    header = {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": _plain(f"{top} {test}{alert.vendor_name}{' : ' if loc == 'fr' else ': '}{label}", HEADER_LIMIT),
        },
    }
    title = f"*{truncate(escape_mrkdwn(alert.title), 500)}*"
    if alert.event_text:
        title += "\n" + truncate(escape_mrkdwn(alert.event_text), 500)
    if alert.scope:
        title += "\n" + truncate(escape_mrkdwn(alert.scope), 700)
    fields = [
        _field(t(loc, "slack.field_kind"), f"{emoji} {label} ({colour})"),
        _field(t(loc, "slack.field_state"), state_text(alert)),
        _field(t(loc, "slack.field_vendor_status"), escape_mrkdwn(word(alert, "status", alert.status))),
        _field(
            t(loc, "slack.field_impact"),
            escape_mrkdwn(word(alert, "impact", alert.impact) if alert.impact else t(loc, "common.not_stated")),
        ),
    ]
    if alert.components:
        fields.append(_field(t(loc, "slack.field_affected"), escape_mrkdwn(", ".join(alert.components))))
    if alert.started_at:
        started = format_time(alert.started_at, loc, alert.timezone)
        fields.append(_field(t(loc, "slack.field_started"), escape_mrkdwn(started)))
    if alert.is_maintenance and (alert.scheduled_for or alert.scheduled_until):
        start = format_time(alert.scheduled_for, loc, alert.timezone) or "?"
        end = format_time(alert.scheduled_until, loc, alert.timezone) or "?"
        fields.append(_field(t(loc, "slack.field_scheduled"), escape_mrkdwn(f"{start} → {end}")))
    section = _section(title)
    section["fields"] = fields[:10]
    return [header, section]


def _update_block(alert: Alert) -> dict[str, Any] | None:
    if not alert.latest_update.strip():
        return None
    head = "*" + t(alert.locale, "common.latest_update", vendor=escape_mrkdwn(alert.vendor_name)) + "*\n"
    body = escape_mrkdwn(alert.latest_update.strip())
    return _section(head + truncate(body, SECTION_LIMIT - _u16(head)))


def _links_block(alert: Alert) -> dict[str, Any] | None:
    links = [
        link(u, label)
        for u, label in (
            (alert.url, t(alert.locale, "common.vendor_incident")),
            (alert.status_page, t(alert.locale, "common.status_page", vendor=alert.vendor_name)),
            (alert.incident_url, t(alert.locale, "common.our_incident_page")),
        )
        if safe_url(u)
    ]
    if not links:
        return None
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(" · ".join(links), 2000)}]}


def _alternatives_block(alert: Alert) -> dict[str, Any] | None:
    loc = alert.locale
    healthy = [a for a in alert.alternatives if a.state == "operational"]
    if not alert.alternatives:
        return None
    if not healthy:
        return _section(
            f"*{t(loc, 'slack.healthy_alternatives')}*\n{t(loc, 'slack.no_healthy_alternative')}"
        )
    lines = []
    for a in healthy[:15]:
        line = f"• *{escape_mrkdwn(a.name)}* — {escape_mrkdwn(word(alert, 'state', a.state))}"
        if a.latency_ms is not None:
            line += f" · {a.latency_ms:.0f} ms"
        if a.note:
            line += f" · {escape_mrkdwn(a.note[:140])}"
        lines.append(line)
    if len(healthy) > 15:
        lines.append(t(loc, "common.more", n=len(healthy) - 15))
    return _section(f"*{t(loc, 'slack.healthy_alternatives')}*\n" + "\n".join(lines))


def _actions_block(alert: Alert) -> dict[str, Any] | None:
    if _is_resolved(alert):
        return None
    loc = alert.locale
    elements: list[dict[str, Any]] = []
    if not alert.acknowledged_by and not alert.quiet:  # a quiet notice asks nobody to act
        elements.append(
            {
                "type": "button",
                "action_id": "ack",
                "style": "primary",
                "text": {"type": "plain_text", "text": t(loc, "slack.button_acknowledge")},
                "value": str(alert.incident_id),
                "confirm": {
                    "title": {"type": "plain_text", "text": _plain(t(loc, "slack.confirm_title"), 100)},
                    "text": {
                        "type": "plain_text",
                        "text": _plain(
                            t(loc, "slack.confirm_text", vendor=alert.vendor_name, id=alert.incident_id), 300
                        ),
                    },
                    "confirm": {"type": "plain_text", "text": t(loc, "slack.button_acknowledge")},
                    "deny": {"type": "plain_text", "text": t(loc, "slack.button_cancel")},
                },
            }
        )
    elements.append(
        {
            "type": "button",
            "action_id": "mute_1h",
            "text": {"type": "plain_text", "text": t(loc, "slack.button_mute")},
            "value": alert.vendor[:2000],
        }
    )
    return {"type": "actions", "block_id": f"alert:{alert.incident_id}:actions", "elements": elements}


def _footer(alert: Alert) -> dict[str, Any] | None:
    parts = []
    if alert.acknowledged_by and not _is_resolved(alert):
        ack = t(alert.locale, "common.acknowledged_by", who=who(alert.acknowledged_by))
        if alert.ack_reason:
            ack += f": {escape_mrkdwn(alert.ack_reason)}"
        parts.append(ack)
    if alert.reason:
        parts.append(t(alert.locale, "slack.why", reason=escape_mrkdwn(alert.reason)))
    if not parts:
        return None
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(" · ".join(parts), 2000)}]}


# -- the message ---------------------------------------------------------------------------------


def render_message(alert: Alert) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and blocks for the incident's main message (posted, then updated in place)."""
    head = _summary_blocks(alert)
    update = _update_block(alert)
    links = _links_block(alert)
    # the playbook has its own "switch to" list (with degraded ones marked): no second list
    alternatives = None if alert.playbook.strip() else _alternatives_block(alert)
    footer = _footer(alert)
    actions = _actions_block(alert)
    before = [b for b in (*head, update, links) if b]
    after = [b for b in (alternatives, footer, actions) if b]
    playbook: list[dict[str, Any]] = []
    if alert.playbook.strip():
        room = MAX_BLOCKS - len(before) - len(after) - 1  # -1: the divider
        chunks = split_sections(markdown_to_mrkdwn(alert.playbook))
        if len(chunks) > room:
            chunks = chunks[: room - 1] + [
                truncate(chunks[room - 1], SECTION_LIMIT - 60) + f"\n_{t(alert.locale, 'slack.playbook_cut')}_"
            ]
        playbook = [{"type": "divider"}] + [_section(c) for c in chunks]
    return fallback_text(alert), before + playbook + after


_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def _mention(alert: Alert) -> str:
    """A real mention of the person who must act, from our config (never from vendor text)."""
    uid = alert.notify_user
    if uid and _SLACK_USER_ID.fullmatch(uid):
        return f" <@{uid}>"
    return ""


def render_reply(alert: Alert) -> str:
    """The short thread reply that goes with an edit of the main message."""
    loc = alert.locale
    event = alert.event_text.strip()
    latest = alert.latest_update.strip()
    if alert.action is AlertAction.RESOLVED or (
        alert.state == "resolved" and alert.action is AlertAction.UPDATED
    ):
        text = f"{_RESOLVED_EMOJI} " + (
            t(loc, "slack.reply_resolved_after", duration=escape_mrkdwn(alert.duration))
            if alert.duration
            else t(loc, "slack.reply_resolved")
        )
        if latest:
            text += ": " + escape_mrkdwn(latest[:300]) + (ELLIPSIS if len(latest) > 300 else "")
    elif alert.action is AlertAction.ACKNOWLEDGED:
        text = "👀 " + t(loc, "common.acknowledged_by", who=who(alert.acknowledged_by))
        if alert.ack_reason:
            text += f": {escape_mrkdwn(alert.ack_reason)}"
    elif alert.action is AlertAction.REMINDER:
        what = event or t(loc, "slack.reply_not_acknowledged")
        text = "⏰ " + t(loc, "slack.reply_reminder", what=escape_mrkdwn(what[:1].lower() + what[1:])) + _mention(alert)
    elif alert.action is AlertAction.ESCALATION:
        text = "📣 " + escape_mrkdwn(event or t(loc, "slack.reply_escalated")) + _mention(alert)
    elif alert.action is AlertAction.UPDATED:
        status = word(alert, "status", alert.status) if alert.status else t(loc, "slack.reply_changed")
        text = t(loc, "slack.reply_update", status=escape_mrkdwn(status))
        body = latest or event
        if body:
            text += " — " + escape_mrkdwn(body[:300]) + (ELLIPSIS if len(body) > 300 else "")
    else:
        text = fallback_text(alert)
    return truncate(text, FALLBACK_LIMIT * 3)
