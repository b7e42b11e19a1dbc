"""The safe-text layer of email alerts: escaping, header values, links, and the playbook's Markdown.

Split from the renderer so both the alert renderer (:mod:`watcher.alerts.email_render`)
and the weekly report's email use the same rules:

- Every string is untrusted in HTML: values are interpolated only through
  :func:`e` (:func:`html.escape`); the playbook Markdown goes through
  markdown-it-py with raw HTML off, images off (no remote loads, no tracking
  pixels), and links allowed only for ``http``/``https`` (:func:`safe_url`).
- Header values lose CR/LF and other control characters (no header injection).
- Message ids are deterministic per incident, thread and sequence (:func:`message_id`).
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

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
HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]+")
"""Characters that would start a new header line: the renderer strips them, the SMTP sender refuses
addresses and logins that hold them (so public, shared by both)."""
ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
"""What may not appear in a Message-ID or an ``X-Watcher-*`` header value (the renderer's and the thread's)."""


# -- small helpers -------------------------------------------------------------------------------


def e(value: Any) -> str:
    """HTML-escape anything (quotes too: values also land in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def header_value(value: Any, limit: int | None = None) -> str:
    """One line for a header: control characters (CR, LF, NUL, …) become spaces, runs collapse."""
    text = " ".join(HEADER_UNSAFE.sub(" ", "" if value is None else str(value)).split())
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
    token = ID_UNSAFE.sub("", str(seq))[:40] or "x"
    return f"<{base}-{token}@{domain}>"


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
    text = _MD_LINK.sub(
        lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) != m.group(2) else m.group(2), text
    )
    return _MD_BOLD.sub(r"\2", text)
