"""What every source parser shares: the error it raises and lenient field readers.

A parser is a pure function ``parse(body: bytes, options: SourceOptions) -> Snapshot``.
It raises :class:`ParseError` (never anything else) for input it cannot read, so
the poller can record a clear per-source error and carry on with the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from watcher import linear
from watcher.model import ComponentStatus, IncidentStatus


class ParseError(ValueError):
    """The document could not be read as the format this source expects."""


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """Per-source settings a parser may need (all optional)."""

    base_url: str | None = None
    """Page URL, used to build incident links when the document has none."""
    product_ids: tuple[str, ...] = ()
    """Google Cloud: keep only incidents touching these product ids."""
    html_rules: dict[str, Any] = field(default_factory=dict)
    """HTML fallback: selector rules from the catalog."""


MAX_JSON_DEPTH = 200


def load_json(body: bytes) -> Any:
    """Decode JSON, refusing HTML error pages and absurd nesting with a clear message."""
    head = body[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        raise ParseError("expected JSON but got an HTML/XML document (wrong URL or an error page?)")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ParseError(f"invalid UTF-8 in JSON document at byte {e.start}") from None
    _check_depth(text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"invalid JSON: {e}") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
"""A JSON string, its closing quote optional: every attempt matches at once (an unterminated string
runs to the end), so removing them all is one linear pass, never a rescan."""
_BRACKETS = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in "[]{}"))


def _check_depth(text: str) -> None:
    """Reject nesting deeper than MAX_JSON_DEPTH before json.loads can hit the recursion limit.

    Brackets inside strings do not count. The strings are cut out by one regular expression and
    the brackets left counted, in C but for the few hundred brackets a status page has: a
    character-by-character loop in Python cost 1 to 4 ms per 30 KB summary, on every changed poll.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return  # cannot nest deeper than it has openers
    depth = 0
    for ch in _JSON_STRING.sub("", text).translate(_BRACKETS):
        if ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


def _check_depth_slow(text: str) -> None:
    """The reference: one character at a time (kept for the tests that compare the two)."""
    depth = 0
    in_string = False
    escape = False
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


def expect_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def object_or_empty(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one: for optional nested objects."""
    return value if isinstance(value, dict) else {}


def list_or_none(obj: dict[str, Any], key: str) -> list[Any] | None:
    """The list under ``key``; None when the key is absent (not published)."""
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if not isinstance(value, list):
        raise ParseError(f"{key!r}: expected a list, got {type(value).__name__}")
    return value


def nested_list(obj: dict[str, Any], key: str, what: str) -> list[Any]:
    """The list under ``key`` of a nested object (empty when absent or null); anything else there
    (a number, a string, an object) is a ParseError naming ``what``, never a TypeError later."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{what}.{key}: expected a list, got {type(value).__name__}")
    return value


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


_JS_DATE = linear.compile(r"^\w{3} (\w{3} \d{1,2} \d{4} \d{2}:\d{2}:\d{2}) GMT([+-]\d{4})")


def parse_time(value: Any) -> datetime | None:
    """Read a timestamp leniently: ISO 8601 (any offset), RFC 822, JS ``Date.toString()``.

    Returns an aware datetime in UTC, or None when the value is missing or unreadable:
    a bad timestamp is not worth losing the rest of the document over.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    s = value.strip()
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        dt = None
    if dt is None:
        m = _JS_DATE.match(s)
        if m:
            try:
                dt = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%b %d %Y %H:%M:%S %z")
            except ValueError:
                dt = None
    if dt is None:
        try:
            dt = parsedate_to_datetime(s)
        except (TypeError, ValueError, IndexError):
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: not a real timestamp
        return None


_COMPONENT_STATUS = {
    "operational": ComponentStatus.OPERATIONAL,
    "up": ComponentStatus.OPERATIONAL,
    "degraded_performance": ComponentStatus.DEGRADED,
    "degradedperformance": ComponentStatus.DEGRADED,
    "degraded": ComponentStatus.DEGRADED,
    "partial_outage": ComponentStatus.PARTIAL_OUTAGE,
    "partialoutage": ComponentStatus.PARTIAL_OUTAGE,
    "minoroutage": ComponentStatus.PARTIAL_OUTAGE,
    "major_outage": ComponentStatus.MAJOR_OUTAGE,
    "majoroutage": ComponentStatus.MAJOR_OUTAGE,
    "full_outage": ComponentStatus.MAJOR_OUTAGE,
    "downtime": ComponentStatus.MAJOR_OUTAGE,
    "down": ComponentStatus.MAJOR_OUTAGE,
    "under_maintenance": ComponentStatus.MAINTENANCE,
    "undermaintenance": ComponentStatus.MAINTENANCE,
    "maintenance": ComponentStatus.MAINTENANCE,
}


def component_status(value: Any) -> ComponentStatus:
    """Map any platform's component status word to ours; unknown words stay UNKNOWN."""
    key = text(value).lower().replace(" ", "_").replace("-", "_")
    return _COMPONENT_STATUS.get(key) or _COMPONENT_STATUS.get(key.replace("_", ""), ComponentStatus.UNKNOWN)


_INCIDENT_STATUS = {
    "investigating": IncidentStatus.INVESTIGATING,
    "identified": IncidentStatus.IDENTIFIED,
    "monitoring": IncidentStatus.MONITORING,
    "update": IncidentStatus.UPDATE,
    "resolved": IncidentStatus.RESOLVED,
    "postmortem": IncidentStatus.POSTMORTEM,
    "scheduled": IncidentStatus.SCHEDULED,
    "notstartedyet": IncidentStatus.SCHEDULED,
    "maintenance_scheduled": IncidentStatus.SCHEDULED,
    "in_progress": IncidentStatus.IN_PROGRESS,
    "inprogress": IncidentStatus.IN_PROGRESS,
    "maintenance_in_progress": IncidentStatus.IN_PROGRESS,
    "verifying": IncidentStatus.VERIFYING,
    "completed": IncidentStatus.COMPLETED,
    "complete": IncidentStatus.COMPLETED,
    "maintenance_complete": IncidentStatus.COMPLETED,
}


def incident_status(value: Any) -> IncidentStatus:
    """Map any platform's incident/maintenance status word to ours."""
    key = text(value).lower().replace(" ", "_").replace("-", "_")
    return _INCIDENT_STATUS.get(key) or _INCIDENT_STATUS.get(key.replace("_", ""), IncidentStatus.UNKNOWN)


# Invisible characters a vendor's text has no business carrying into an alert: bidi embeddings,
# overrides and isolates (which reorder what the reader sees: "Trojan Source"), zero-width spaces and
# joiners, word joiners, the BOM, soft hyphens, interlinear annotations, tags, and C0/C1 controls
# other than tab and newline. One character class: linear time.
_INVISIBLE = linear.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\x{ad}\x{34f}\x{61c}\x{115f}\x{1160}\x{17b4}\x{17b5}"
    r"\x{180b}-\x{180f}\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2060}-\x{206f}\x{3164}\x{fe00}-\x{fe0f}"
    r"\x{feff}\x{ffa0}\x{fff9}-\x{fffb}\x{e0000}-\x{e0fff}]"
)


def clean_text(value: str) -> str:
    """``value`` without invisible and bidi-control characters (see ``_INVISIBLE``); \r becomes \n."""
    if not value or value.isascii() and value.isprintable():
        return value
    return _INVISIBLE.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def clean_snapshot(snap: Any) -> Any:
    """Every vendor string of a Snapshot through :func:`clean_text`, before it reaches the
    store, and so the board, Slack and email (ids and URLs included: they are shown too)."""
    from dataclasses import fields, is_dataclass, replace

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return clean_text(value)
        if isinstance(value, tuple):
            return tuple(clean(v) for v in value)
        if is_dataclass(value) and not isinstance(value, type):
            changes = {}
            for f in fields(value):
                old = getattr(value, f.name)
                if isinstance(old, str | tuple) or is_dataclass(old):
                    new = clean(old)
                    if new is not old and new != old:
                        changes[f.name] = new
            return replace(value, **changes) if changes else value
        return value

    return clean(snap)
