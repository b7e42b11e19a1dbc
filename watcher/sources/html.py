"""HTML fallback for status pages with no machine-readable endpoint, driven by CSS rules.

The catalog gives each such source an ``html_rules`` dict (``SourceOptions.html_rules``).
Every selector is a CSS selector (soupsieve, as used by ``BeautifulSoup.select``); the
``*_selector`` rules for parts of a row are evaluated *inside* that row.

=============================  ==========================================================
rule                           meaning
=============================  ==========================================================
``state_selector``             the first match's text is the page's overall state
                               → ``Snapshot.indicator``. Must match (else ParseError:
                               the page layout changed).
``states``                     ``{text: status}`` table used for every status text below.
                               ``status`` is a component status word (``operational``,
                               ``degraded_performance``, ``partial_outage``,
                               ``major_outage``, ``under_maintenance``). Matching is
                               case- and whitespace-insensitive: exact text first, then
                               the longest key contained in the text. Texts the table
                               does not know fall back to the common status words
                               ("Operational", "Degraded Performance", …), else UNKNOWN.
``component_selector``         one match per component row. Zero matches is a page that
                               lists no components (``components`` is empty, not an error).
``component_name_selector``    the name inside the row (default: the row's own text).
``component_group_selector``   containers of a group of components (a region, a product):
                               a row inside one belongs to that group. Components are
                               keyed by group and name, so "US-1 / Authentication" and
                               "EU-1 / Authentication" stay two components.
``component_group_name_selector``  the group's name inside its container (default: the
                               container's first ``.name``, else its first line of text).
``component_status_selector``  the status inside the row (default: the row itself).
``component_status_attribute`` read the status from this attribute of the status element
                               instead of its text (e.g. ``data-status``, ``class``).
``incident_selector``          one match per incident (zero matches = no incidents).
``incident_title_selector``    the title inside the incident (default: its own text).
``incident_status_selector``   the status text inside the incident (investigating,
                               identified, monitoring, resolved, …); default UNKNOWN.
``incident_link_selector``     the link inside the incident (default ``a[href]``); its
                               ``href`` (made absolute with ``base_url``) is the URL, and
                               ``…/incidents/<id>`` gives the key.
``incident_time_selector``     the time inside the incident: a ``datetime`` attribute or
                               the text → ``updated_at``.
``incident_scope``             ``"active"`` (default: the page lists only open incidents,
                               so one that disappears has ended) or ``"history"``.
=============================  ==========================================================

Rules not configured give ``None`` (not published): without ``component_selector``
``components`` is None, without ``incident_selector`` ``incidents`` is None. Unknown rule
names and invalid selectors raise ParseError (a catalog mistake must not look like an
all-clear). Documents over 5 MB and JSON bodies are refused before parsing.
"""

from __future__ import annotations

import hashlib
import warnings
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag, XMLParsedAsHTMLWarning

from watcher import linear
from watcher.model import Component, ComponentStatus, IncidentScope, Report, Snapshot
from watcher.sources.base import ParseError, SourceOptions, component_status, incident_status, parse_time

MAX_HTML_BYTES = 5 * 1024 * 1024

KNOWN_RULES = {
    "state_selector",
    "states",
    "component_selector",
    "component_name_selector",
    "component_status_selector",
    "component_status_attribute",
    "component_group_selector",
    "component_group_name_selector",
    "incident_selector",
    "incident_title_selector",
    "incident_status_selector",
    "incident_link_selector",
    "incident_time_selector",
    "incident_scope",
}

INDICATOR = {
    ComponentStatus.OPERATIONAL: "none",
    ComponentStatus.DEGRADED: "minor",
    ComponentStatus.PARTIAL_OUTAGE: "major",
    ComponentStatus.MAJOR_OUTAGE: "critical",
    ComponentStatus.MAINTENANCE: "maintenance",
}

_KEY_IN_URL = linear.compile(r"/(?:incidents?|maintenances?)/+([A-Za-z0-9][A-Za-z0-9_-]*)")


def parse(body: bytes, options: SourceOptions | None = None) -> Snapshot:
    """Read a status page's HTML with the source's ``html_rules``."""
    options = options or SourceOptions()
    rules = _check_rules(options.html_rules)
    soup = load_html(body)
    try:
        return _parse(soup, rules, options)
    except RecursionError:
        raise ParseError("HTML nested too deeply to read") from None


def load_html(body: bytes) -> BeautifulSoup:
    """Size-check and parse an HTML document (lxml); refuse JSON bodies."""
    if not isinstance(body, bytes | bytearray):
        raise ParseError("HTML body must be bytes")
    if len(body) > MAX_HTML_BYTES:
        raise ParseError(f"HTML document larger than {MAX_HTML_BYTES} bytes")
    head = bytes(body[:256]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        raise ParseError("expected an HTML page but got JSON")
    try:
        # lxml (libxml2), not html.parser: the standard library's parser takes time quadratic in
        # runs of "<a" or "<!--" (80 KB of them held the interpreter for 6 s).
        with warnings.catch_warnings():  # a vendor serving XML here is read as HTML all the same
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            return BeautifulSoup(bytes(body), "lxml")
    except RecursionError:
        raise ParseError("HTML nested too deeply to read") from None
    except Exception as e:  # bs4/html.parser are third-party: any failure is a parse failure
        raise ParseError(f"could not parse HTML: {type(e).__name__}: {e}") from None


def _check_rules(rules: Any) -> dict[str, Any]:
    if not isinstance(rules, dict) or not rules:
        raise ParseError("HTML source has no html_rules configured")
    unknown = sorted(str(k) for k in rules if k not in KNOWN_RULES)
    if unknown:
        raise ParseError(f"unknown html_rules: {', '.join(unknown)}")
    for k, v in rules.items():
        if k == "states":
            pairs_ok = isinstance(v, dict) and all(
                isinstance(a, str) and isinstance(b, str) for a, b in v.items()
            )
            if not pairs_ok:
                raise ParseError("html_rules['states'] must map text to a status word")
        elif not isinstance(v, str) or not v.strip():
            raise ParseError(f"html_rules[{k!r}] must be a non-empty string")
    scope = rules.get("incident_scope", "active")
    if scope not in ("active", "history"):
        raise ParseError("html_rules['incident_scope'] must be 'active' or 'history'")
    return rules


def _select(node: Tag, selector: str, rule: str) -> list[Tag]:
    try:
        return [t for t in node.select(selector) if isinstance(t, Tag)]
    except RecursionError:
        raise
    except Exception as e:  # soupsieve.SelectorSyntaxError and friends
        raise ParseError(f"html_rules[{rule!r}]: invalid CSS selector {selector!r}: {e}") from None


def _text(node: Tag) -> str:
    return " ".join(node.get_text(" ").split())


def _parse(soup: BeautifulSoup, rules: dict[str, Any], options: SourceOptions) -> Snapshot:
    states = {" ".join(k.lower().split()): v for k, v in (rules.get("states") or {}).items()}

    indicator = None
    if "state_selector" in rules:
        found = _select(soup, rules["state_selector"], "state_selector")
        if not found:
            raise ParseError("html_rules['state_selector'] matched nothing: did the page layout change?")
        indicator = INDICATOR.get(classify(_text(found[0]), states))

    components = None
    if "component_selector" in rules:
        rows = _select(soup, rules["component_selector"], "component_selector")
        # a page that lists no components is a valid page (some list only incidents): empty, not an error
        components = _components(rows, rules, states, _groups(soup, rows, rules))

    incidents = None
    if "incident_selector" in rules:
        found = _select(soup, rules["incident_selector"], "incident_selector")
        incidents = tuple(_incident(node, rules, options) for node in found)

    title = soup.find("title")
    return Snapshot(
        components=components,
        incidents=incidents,
        incident_scope=IncidentScope(rules.get("incident_scope", "active")),
        indicator=indicator,
        page_name=_text(title) or None if isinstance(title, Tag) else None,
        page_url=options.base_url or None,
    )


def classify(value: str, states: dict[str, str]) -> ComponentStatus:
    """Status text → ComponentStatus through the ``states`` table, then the common words."""
    key = " ".join(value.lower().split())
    if not key:
        return ComponentStatus.UNKNOWN
    word = states.get(key)
    if word is None:
        for k in sorted(states, key=len, reverse=True):
            if k and k in key:
                word = states[k]
                break
    if word is not None:
        return component_status(word)
    return component_status(key)


def _groups(soup: BeautifulSoup, rows: list[Tag], rules: dict[str, Any]) -> dict[int, str]:
    """id(row) → the name of the innermost group container holding it (``component_group_selector``)."""
    sel = rules.get("component_group_selector")
    if not sel:
        return {}
    wanted = {id(r) for r in rows}
    out: dict[int, str] = {}
    for group in _select(soup, sel, "component_group_selector"):  # document order: inner groups last
        name_sel = rules.get("component_group_name_selector")
        node = _first(group, name_sel, "component_group_name_selector") if name_sel else None
        if node is None and not name_sel:
            found = _select(group, ".name", "component_group_name_selector")
            node = found[0] if found else None
        name = _text(node) if node is not None else (group.get_text("\n").strip().split("\n") or [""])[0].strip()
        if not name:
            continue
        for d in group.descendants:
            if id(d) in wanted:
                out[id(d)] = name
    return out


def _components(
    rows: list[Tag], rules: dict[str, Any], states: dict[str, str], groups: dict[int, str] | None = None
) -> tuple[Component, ...]:
    out: list[Component] = []
    seen: set[tuple[str | None, str]] = set()
    groups = groups or {}
    for row in rows:
        name_node = _first(row, rules.get("component_name_selector"), "component_name_selector")
        status_node = _first(row, rules.get("component_status_selector"), "component_status_selector")
        name = _text(name_node) if name_node is not None else ""
        group = groups.get(id(row))
        if group == name:
            group = None  # the group's own header row
        if not name or (group, name) in seen:
            continue
        seen.add((group, name))
        status = ComponentStatus.UNKNOWN
        if status_node is not None:
            attr = rules.get("component_status_attribute")
            if attr:
                raw = status_node.get(attr)
                value = " ".join(raw) if isinstance(raw, list) else (raw if isinstance(raw, str) else "")
            else:
                value = _text(status_node)
            status = classify(value, states)
        cid = f"{group}/{name}" if group else name
        out.append(Component(id=cid, name=name, status=status, group_id=group))
    return tuple(out)


def _first(node: Tag, selector: str | None, rule: str) -> Tag | None:
    if not selector:
        return node
    found = _select(node, selector, rule)
    return found[0] if found else None


def _incident(node: Tag, rules: dict[str, Any], options: SourceOptions) -> Report:
    title_node = _first(node, rules.get("incident_title_selector"), "incident_title_selector")
    title = (_text(title_node) if title_node is not None else "") or "(untitled incident)"
    status_sel = rules.get("incident_status_selector")
    status_node = _first(node, status_sel, "incident_status_selector") if status_sel else None
    status = incident_status(_text(status_node)) if status_node is not None else incident_status("")

    link_node = _first(node, rules.get("incident_link_selector") or "a[href]", "incident_link_selector")
    if link_node is None and node.name == "a":
        link_node = node
    href = link_node.get("href") if link_node is not None else None
    url = None
    href = href.strip() if isinstance(href, str) else ""
    if href and not href.lower().startswith(("javascript:", "data:")):
        url = urljoin(options.base_url or "", href)

    updated: datetime | None = None
    time_sel = rules.get("incident_time_selector")
    time_node = _first(node, time_sel, "incident_time_selector") if time_sel else None
    if time_node is not None:
        stamp = time_node.get("datetime")
        updated = _time(stamp if isinstance(stamp, str) else _text(time_node))

    m = _KEY_IN_URL.search(url or "")
    digest = hashlib.sha1(title.encode("utf-8", "replace")).hexdigest()[:16]
    key = m.group(1) if m else (url or f"html-{digest}")
    return Report(key=key, title=title, status=status, url=url, updated_at=updated)


def _time(value: Any) -> datetime | None:
    # base.parse_time can raise OverflowError on year-1/9999 dates with an offset.
    try:
        return parse_time(value)
    except (OverflowError, ValueError):
        return None
