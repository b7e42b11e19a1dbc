"""RSS 2.0 / Atom status feeds (Statuspage ``history.rss``/``history.atom``, incident.io
``feed.rss``/``feed.atom``, Flashduty ``history.rss``, Better Stack ``feed.rss``, and plain feeds).

Safety: the document is handed to feedparser as a file object (never as a string or
bytes, which feedparser would try as a URL or a local file name), and any
``<!DOCTYPE`` that declares ``<!ENTITY`` is refused before parsing (entity bombs).
A feed that feedparser flags as malformed (``bozo``) is refused only when it yields
no entries; otherwise what was read is used.

One Report per incident, ``incident_scope`` HISTORY:

- ``key``: the vendor's incident id from the item link ``…/incidents/<id>`` (also
  ``/incident/<id>``, ``/maintenances/<id>``, incident.io's ``//incidents/<id>``),
  so a feed item and the same incident read from the JSON API share a key; else
  the guid/Atom id; else a hash of the title. Items with the same key are merged
  into one Report (Better Stack publishes one item per update).
- ``title``: the item title, with a Better Stack style ``[Resolved] `` prefix moved
  into the status.
- Description formats recognised (first match wins):

  1. Statuspage timeline: one ``<p><small>date</small><br><strong>Label</strong> - text</p>``
     per update, newest first. Each becomes an :class:`Update` (oldest first); the
     report status is the newest label. The date has no year: it is taken from the
     item's ``pubDate`` (a date that would land after it belongs to the year before).
  2. Status line: ``<strong>Status:</strong> resolved`` (Flashduty) or
     ``<b>Status: Resolved</b>`` (incident.io), then the message, then
     ``Affected components: A, B`` (Flashduty) or ``<b>Affected components</b><ul><li>A
     (Operational)</li></ul>`` (incident.io; the live component state in brackets is
     dropped). One Update: the item's current state at its ``pubDate``.
  3. Anything else: a status from the title prefix if there is one (the description is
     then that update's body), otherwise UNKNOWN with the stripped description in
     ``extra_text``.

- ``Update.id`` is a stable hash of (status, date text, body), so an item
  re-published with a new update yields a new Update even though its guid is the same.
- ``updated_at``: the item's ``updated``/``published`` date.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import feedparser
from bs4 import BeautifulSoup, NavigableString, Tag

from watcher import linear
from watcher.model import IncidentScope, IncidentStatus, Report, Snapshot, Update
from watcher.sources.base import ParseError, SourceOptions, component_status, incident_status, parse_time

MAX_FEED_BYTES = 10 * 1024 * 1024

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
# Every pattern over vendor text is linear-time (watcher.linear: RE2); see its docstring for why.
_KEY_IN_URL = linear.compile(r"/(?:incidents?|maintenances?)/+([A-Za-z0-9][A-Za-z0-9_-]*)")
_TITLE_PREFIX = linear.compile(r"^\s*\[([^\]]{1,40})\]\s*")
_STATUS_LINE = linear.compile(r"(?im)^[ \t]*Status[ \t]*:[ \t]*(\S.*?)[ \t]*$")
_COMPONENTS_HEAD = linear.compile(r"(?im)^[ \t]*Affected components[ \t]*:?[ \t]*(.*)$")
_TRAILING_STATE = linear.compile(r"\s*\(([^()]*)\)\s*$")
_LEAD_DASH = linear.compile(r"^\s*[-–—:]\s*")
_BLANK_LINES = linear.compile(r"\n{3,}")
_OFFSET = linear.compile(r"([+-])(\d{2}):?(\d{2})")
_BLOCK_TAGS = ["p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "blockquote"]
_MAINTENANCE_STATES = {
    IncidentStatus.SCHEDULED,
    IncidentStatus.IN_PROGRESS,
    IncidentStatus.VERIFYING,
    IncidentStatus.COMPLETED,
}
_MIN_TIME = datetime.min.replace(tzinfo=UTC)
_MAX_DATE_TEXT = 120  # "Dec 24, 2013 - 11:21 PST" is 24: a longer <small> is not a date

# "Jan  1, 09:09 PST", "Dec 24, 2013 - 11:21 PST", "Oct 7, 14:47 UTC"
_SP_DATE = linear.compile(
    r"(?P<mon>[A-Za-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2})(?:,?\s+(?P<year>\d{4}))?\s*[,-]?\s*(?:-\s*)?"
    r"(?P<h>\d{1,2}):(?P<m>\d{2})\s*(?P<ampm>[AaPp][Mm])?\s*(?P<tz>[A-Za-z]{1,5}|[+-]\d{2}:?\d{2})?"
)
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
)}
_TZ_HOURS = {
    "utc": 0, "gmt": 0, "z": 0, "wet": 0, "bst": 1, "cet": 1, "west": 1, "cest": 2, "eet": 2, "eest": 3,
    "msk": 3, "ist": 5.5, "sgt": 8, "hkt": 8, "jst": 9, "kst": 9, "aest": 10, "aedt": 11, "nzst": 12,
    "nzdt": 13, "hst": -10, "akst": -9, "akdt": -8, "pst": -8, "pdt": -7, "mst": -7, "mdt": -6,
    "cst": -6, "cdt": -5, "est": -5, "edt": -4, "ast": -4, "adt": -3,
}


def parse(body: bytes, options: SourceOptions | None = None) -> Snapshot:
    """Parse an RSS or Atom status feed into a Snapshot of incident Reports."""
    options = options or SourceOptions()
    if not isinstance(body, bytes | bytearray):
        raise ParseError("feed body must be bytes")
    body = bytes(body)
    if len(body) > MAX_FEED_BYTES:
        raise ParseError(f"feed larger than {MAX_FEED_BYTES} bytes")
    _refuse_entities(body)
    try:
        # sanitize_html=False: feedparser's sanitizer is quadratic on vendor HTML (200 KB of
        # "<!--" holds the interpreter for seconds), and we only ever take text out of it.
        result = feedparser.parse(io.BytesIO(body), resolve_relative_uris=False, sanitize_html=False)
    except Exception as e:  # feedparser is third-party: whatever it raises is a parse failure
        raise ParseError(f"could not parse feed: {type(e).__name__}: {e}") from None
    entries = list(result.get("entries") or ())
    if not entries:
        if result.get("bozo"):
            raise ParseError(f"not a valid RSS/Atom feed: {result.get('bozo_exception')}")
        if not result.get("version"):
            raise ParseError("not an RSS/Atom feed (no feed version recognised)")
    feed = result.get("feed") or {}

    items: dict[str, list[_Item]] = {}
    for entry in entries:
        try:
            item = _item(entry)
        except RecursionError:
            continue  # absurdly nested description HTML: skip the item, keep the rest
        items.setdefault(item.key, []).append(item)
    reports = tuple(_merge(group) for group in items.values())
    return Snapshot(
        components=None,
        incidents=tuple(r for r in reports if not r.is_maintenance),
        incident_scope=IncidentScope.HISTORY,
        maintenances=tuple(r for r in reports if r.is_maintenance),
        maintenance_scope=IncidentScope.HISTORY,
        indicator=None,
        page_name=_s(feed.get("title")) or None,
        page_url=_s(feed.get("link")) or options.base_url or None,
    )


def _refuse_entities(body: bytes) -> None:
    """Refuse entity declarations, in whatever encoding the document is read in.

    The search is for ASCII bytes, so it only means something when the parser will read those
    bytes as ASCII: in UTF-8 and the other ASCII-compatible encodings, or in UTF-16/UTF-32 once
    the NULs around each ASCII character are dropped. A document in any other encoding (EBCDIC
    code pages, UTF-7, ...), sniffed from its first bytes or declared, could spell ``<!ENTITY`` in
    bytes this search never sees, so it is refused: no status page serves one.
    """
    wide = body[:4].startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body[:4]
    folded = body.replace(b"\x00", b"") if wide else body
    start = folded.lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n")[:1]
    if start and start != b"<":
        raise ParseError(
            "refusing a feed that does not start with '<' in UTF-8, UTF-16 or UTF-32 "
            "(an EBCDIC or other non-ASCII encoding, whose entity declarations cannot be checked)"
        )
    declared = _DECLARED_ENCODING.search(folded[:1024])
    if declared:
        name = declared.group(1).decode("ascii")
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            raise ParseError(f"refusing a feed in an unknown encoding {name!r}") from None
        if not (wide and codec.startswith(("utf-16", "utf-32"))) and not _ascii_compatible(codec):
            raise ParseError(
                f"refusing a feed in encoding {name!r}: not ASCII-compatible, so its entity "
                "declarations cannot be checked"
            )
    for candidate in (body, body.replace(b"\x00", b"")):
        if _DOCTYPE.search(candidate) and _ENTITY.search(candidate):
            raise ParseError("refusing XML with <!DOCTYPE> entity declarations (possible entity bomb)")


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")


def _ascii_compatible(codec: str) -> bool:
    """Whether ``codec`` reads every ASCII byte as that ASCII character (not EBCDIC, UTF-7, ...)."""
    ascii_bytes = bytes(range(128))
    try:
        return ascii_bytes.decode(codec) == ascii_bytes.decode("ascii")
    except (UnicodeDecodeError, LookupError):
        return False


def _s(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


class _Item:
    __slots__ = (
        "key", "title", "url", "status", "updates", "components", "extra_text", "updated_at",
        "timeline", "title_status",
    )

    def __init__(self) -> None:
        self.key = ""
        self.title = ""
        self.url: str | None = None
        self.status = IncidentStatus.UNKNOWN
        self.updates: list[Update] = []
        self.components: list[str] = []
        self.extra_text = ""
        self.updated_at: datetime | None = None
        self.timeline = False
        self.title_status: str | None = None


def _item(entry: Any) -> _Item:
    item = _Item()
    link = _s(entry.get("link"))
    guid = _s(entry.get("id"))
    raw_title = _s(entry.get("title"))
    title, prefix = _split_title(raw_title)
    item.title = title or "(untitled incident)"
    item.title_status = prefix
    item.url = link or (guid if guid.startswith(("http://", "https://")) else None)
    item.key = _key(link, guid, raw_title)
    # dict.get: FeedParserDict.get("updated") falls back to "published" with a DeprecationWarning.
    date_text = _s(dict.get(entry, "updated")) or _s(dict.get(entry, "published"))
    item.updated_at = _time(date_text)

    html = _description(entry)
    # lxml, not html.parser: the standard library's parser is quadratic on runs of "<a" or "<!--".
    soup = BeautifulSoup(html, "lxml") if html else None
    timeline = _timeline(soup, item.updated_at) if soup is not None else []
    if timeline:
        item.timeline = True
        item.updates = timeline
        item.status = timeline[-1].status
        return item

    plain = _plain_text(soup) if soup is not None else ""
    m = _STATUS_LINE.search(plain)
    if m:
        status = incident_status(m.group(1))
        message, components = _status_line_parts(plain, m)
        item.status = status
        item.components = components
        item.updates = [_make_update(status, date_text, message, item.updated_at)]
        return item

    if prefix is not None:
        status = _prefix_status(prefix)
        item.status = status
        item.updates = [_make_update(status, date_text, plain, item.updated_at)]
        return item
    item.extra_text = plain
    return item


def _description(entry: Any) -> str:
    content = entry.get("content")
    if isinstance(content, list):
        for c in content:
            value = c.get("value") if isinstance(c, dict) else None
            if isinstance(value, str) and value.strip():
                return value
    for field in ("summary", "description"):
        value = entry.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _split_title(title: str) -> tuple[str, str | None]:
    m = _TITLE_PREFIX.match(title)
    if not m:
        return title, None
    label = m.group(1).strip()
    if _prefix_status(label) is IncidentStatus.UNKNOWN and label.lower() not in ("maintenance", "incident"):
        return title, None
    return title[m.end():].strip(), label


def _prefix_status(label: str) -> IncidentStatus:
    if label.lower() in ("maintenance", "incident"):
        return IncidentStatus.UNKNOWN
    return incident_status(label)


def _key(link: str, guid: str, title: str) -> str:
    for candidate in (link, guid):
        m = _KEY_IN_URL.search(candidate)
        if m:
            return m.group(1)
    if guid:
        return guid
    if link:
        return link
    return "feed-" + hashlib.sha1(title.encode("utf-8", "replace")).hexdigest()[:16]


def _make_update(status: IncidentStatus, date_text: str, body: str, when: datetime | None) -> Update:
    return Update(id=_update_id(status, date_text, body), status=status, body=body, created_at=when)


def _update_id(status: IncidentStatus, date_text: str, body: str) -> str:
    raw = f"{status.value}|{' '.join(date_text.split())}|{body}"
    return hashlib.sha1(raw.encode("utf-8", "replace")).hexdigest()[:20]


def _timeline(soup: BeautifulSoup, published: datetime | None) -> list[Update]:
    """Statuspage update paragraphs, returned oldest first."""
    out: list[Update] = []
    for p in soup.find_all("p"):
        small = p.find("small")
        strong = p.find(["strong", "b"])
        if not isinstance(small, Tag) or not isinstance(strong, Tag):
            continue
        label = " ".join(strong.get_text(" ").split())
        if label.lower().startswith("status"):
            continue  # "Status: X" is the other format
        date_text = " ".join(small.get_text(" ").split())[:_MAX_DATE_TEXT]
        small.extract()
        strong.extract()
        body = _plain_text(p)
        body = _LEAD_DASH.sub("", body, count=1).strip()
        status = incident_status(label)
        out.append(
            Update(
                id=_update_id(status, date_text, body),
                status=status,
                body=body,
                created_at=_statuspage_date(date_text, published),
            )
        )
    out.reverse()
    return out


def _plain_text(node: Tag | BeautifulSoup) -> str:
    """Text of an HTML fragment with <br> and block elements turned into line breaks."""
    for br in node.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for block in node.find_all(_BLOCK_TAGS):
        block.insert_before(NavigableString("\n"))
        block.append(NavigableString("\n"))
    raw = node.get_text("")
    lines = [" ".join(line.split()) for line in raw.replace("\r", "\n").split("\n")]
    text = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _status_line_parts(plain: str, m: Any) -> tuple[str, list[str]]:
    rest = plain[m.end():]
    head = _COMPONENTS_HEAD.search(rest)
    if not head:
        return rest.strip(), []
    message = rest[: head.start()].strip()
    inline = head.group(1).strip()
    if inline:
        names = [n.strip() for n in inline.split(",")]
    else:
        names = [line.strip() for line in rest[head.end():].split("\n")]
    components: list[str] = []
    for name in names:
        if not name:
            continue
        state = _TRAILING_STATE.search(name)
        if state and component_status(state.group(1)).value != "unknown":
            name = name[: state.start()].strip()
        if name and name not in components:
            components.append(name)
    return message, components


def _statuspage_date(date_text: str, published: datetime | None) -> datetime | None:
    m = _SP_DATE.search(date_text)
    if not m:
        return None
    month = _MONTHS.get(m.group("mon").lower())
    if month is None:
        return None
    tz = _tz(m.group("tz"))
    if tz is None:
        return None
    hour, minute = int(m.group("h")), int(m.group("m"))
    ampm = (m.group("ampm") or "").lower()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    year_text = m.group("year")
    if year_text:
        years = [int(year_text)]
    elif published is not None:
        # No year in the label: take the year that puts the date nearest the item's
        # date (a postmortem can come weeks after pubDate; Dec 31 vs a Jan pubDate).
        years = [published.year - 1, published.year, published.year + 1]
    else:
        return None
    candidates = []
    for year in years:
        try:
            local = datetime(year, month, int(m.group("day")), hour, minute, tzinfo=tz)
            candidates.append(local.astimezone(UTC))
        except (ValueError, OverflowError):
            continue
    if not candidates:
        return None
    if published is None:
        return candidates[0]
    return min(candidates, key=lambda dt: abs(dt - published))


def _tz(word: str | None) -> timezone | None:
    if not word:
        return UTC
    w = word.lower()
    if w in _TZ_HOURS:
        return timezone(timedelta(hours=_TZ_HOURS[w]))
    m = _OFFSET.fullmatch(word)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        try:
            return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
        except ValueError:
            return None
    return None


def _merge(items: list[_Item]) -> Report:
    items = sorted(items, key=lambda i: (i.updated_at is None, i.updated_at or _MIN_TIME), reverse=True)
    newest = next((i for i in items if i.updated_at is not None), items[0])
    seen: dict[str, Update] = {}
    for item in items:
        for u in item.updates:
            seen.setdefault(u.id, u)
    updates = sorted(seen.values(), key=lambda u: (u.created_at is None, u.created_at or _MIN_TIME))
    components: dict[str, None] = {}
    for item in items:
        for c in item.components:
            components.setdefault(c)
    status = newest.status
    if status is IncidentStatus.UNKNOWN and updates:
        status = updates[-1].status
    closing = [u for u in updates if u.status in (IncidentStatus.RESOLVED, IncidentStatus.COMPLETED)]
    resolved_at = (closing[-1].created_at or newest.updated_at) if status.is_closed and closing else None
    if resolved_at is None and status.is_closed:
        resolved_at = newest.updated_at
    full_history = any(i.timeline for i in items) or len(items) > 1
    is_maintenance = any(u.status in _MAINTENANCE_STATES for u in updates) or status in _MAINTENANCE_STATES
    if any((i.title_status or "").lower() == "maintenance" for i in items):
        is_maintenance = True
    return Report(
        key=newest.key,
        title=newest.title,
        status=status,
        is_maintenance=is_maintenance,
        url=newest.url,
        started_at=updates[0].created_at if full_history and updates else None,
        updated_at=newest.updated_at,
        resolved_at=resolved_at,
        components=tuple(components),
        updates=tuple(updates),
        extra_text=newest.extra_text,
    )


def _time(value: Any) -> datetime | None:
    # base.parse_time can raise OverflowError on year-1/9999 dates with an offset.
    try:
        return parse_time(value)
    except (OverflowError, ValueError):
        return None
