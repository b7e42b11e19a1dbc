"""Instatus public ``summary.json`` (``https://<page>/summary.json``, also ``/v3/summary.json``).

Shape (https://instatus.com/help/api/public-data)::

    {"page": {"name", "url", "status"},
     "activeIncidents": [{"id", "name", "started", "status", "impact", "url"}],
     "activeMaintenances": [{"id", "name", "start", "status", "duration", "url"}]}

- ``page.status`` is ``UP`` / ``HASISSUES`` / ``UNDERMAINTENANCE``; it becomes the
  Statuspage-style display indicator (``none`` / worst incident impact / ``maintenance``).
- ``activeIncidents`` is every currently open incident, so ``incident_scope`` is
  ACTIVE; ``activeMaintenances`` holds upcoming (``NOTSTARTEDYET``) and running
  (``INPROGRESS``) windows, so ``maintenance_scope`` is ACTIVE too.
- Instatus leaves ``activeIncidents`` / ``activeMaintenances`` out entirely when they
  are empty (seen live on a healthy page). An absent key is "not published" (None)
  unless the page itself says ``UP``, in which case the page vouches that nothing
  is open and we report an empty tuple. (A page saying HASISSUES with no
  ``activeIncidents`` key keeps None: something is wrong and we were not told what.)
- summary.json publishes no components: ``components`` is None.
- ``started`` / ``start`` are JavaScript ``Date.toString()`` strings in the docs
  ("Sat Jun 11 2022 18:55:50 GMT+0000 (Coordinated Universal Time)") and ISO 8601 in
  other captures; both are read.
- ``impact`` is kept raw (``MAJOROUTAGE``, ``PARTIALOUTAGE``, ``DEGRADEDPERFORMANCE``…).
- The summary carries no update timeline, so ``Report.updates`` is empty.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from watcher import linear
from watcher.model import IncidentScope, Report, Snapshot
from watcher.sources.base import (
    ParseError,
    SourceOptions,
    expect_dict,
    incident_status,
    list_or_none,
    load_json,
    parse_time,
    text,
)

_PAGE_INDICATOR = {"up": "none", "undermaintenance": "maintenance"}

# Impact → Statuspage indicator words (Instatus has no "critical"; its worst is major).
_IMPACT_INDICATOR = {
    "majoroutage": "major",
    "partialoutage": "minor",
    "minoroutage": "minor",
    "degradedperformance": "minor",
    "undermaintenance": "maintenance",
    "operational": "none",
}
_INDICATOR_RANK = {"none": 0, "maintenance": 1, "minor": 2, "major": 3}

_ID_IN_URL = linear.compile(r"/(?:incidents?|maintenances?)/+([^/?#\s]+)")


def parse(body: bytes, options: SourceOptions | None = None) -> Snapshot:
    """Parse an Instatus ``summary.json`` into a Snapshot."""
    options = options or SourceOptions()
    doc = expect_dict(load_json(body), "Instatus summary")
    page = doc.get("page")
    if not isinstance(page, dict):
        raise ParseError("not an Instatus summary: no 'page' object")
    page_status = text(page.get("status")).lower()
    page_url = text(page.get("url")) or options.base_url or None

    raw_incidents = list_or_none(doc, "activeIncidents")
    raw_maint = list_or_none(doc, "activeMaintenances")
    page_is_up = page_status == "up"
    if raw_incidents is None and page_is_up:
        raw_incidents = []
    if raw_maint is None and page_is_up:
        raw_maint = []

    incidents = _reports(raw_incidents, page_url, maintenance=False)
    maintenances = _reports(raw_maint, page_url, maintenance=True)
    return Snapshot(
        components=None,
        incidents=incidents,
        incident_scope=IncidentScope.ACTIVE,
        maintenances=maintenances,
        maintenance_scope=IncidentScope.ACTIVE,
        indicator=_indicator(page_status, incidents),
        page_name=text(page.get("name")) or None,
        page_url=page_url,
    )


def _indicator(page_status: str, incidents: tuple[Report, ...] | None) -> str | None:
    if not page_status:
        return None
    if page_status in _PAGE_INDICATOR:
        return _PAGE_INDICATOR[page_status]
    if page_status != "hasissues":
        return page_status  # unknown page status: pass through for display
    worst = "minor"
    for r in incidents or ():
        level = _IMPACT_INDICATOR.get((r.impact or "").lower().replace("_", ""), "minor")
        if _INDICATOR_RANK.get(level, 0) > _INDICATOR_RANK[worst]:
            worst = level
    return worst


def _reports(rows: list[Any] | None, page_url: str | None, *, maintenance: bool) -> tuple[Report, ...] | None:
    if rows is None:
        return None
    return tuple(_report(row, page_url, maintenance) for row in rows if isinstance(row, dict))


def _report(row: dict[str, Any], page_url: str | None, maintenance: bool) -> Report:
    url = text(row.get("url")) or None
    title = text(row.get("name")) or "(untitled incident)"
    started_raw = row.get("start") if maintenance else row.get("started")
    if started_raw is None:
        started_raw = row.get("started") if maintenance else row.get("start")
    started = _time(started_raw)
    key = _key(row, url, title, started_raw)
    if url is None and page_url and key:
        url = f"{page_url.rstrip('/')}/{'maintenance' if maintenance else 'incident'}/{key}"
    status = incident_status(row.get("status"))
    impact = text(row.get("impact")) or None
    updated = _time(row.get("updatedAt")) or _time(row.get("updated"))
    scheduled_for = started if maintenance else None
    scheduled_until = _end(started, row.get("duration")) if maintenance else None
    return Report(
        key=key,
        title=title,
        status=status,
        impact=impact,
        is_maintenance=maintenance,
        url=url,
        started_at=started,
        updated_at=updated,
        resolved_at=updated if status.is_closed else None,
        scheduled_for=scheduled_for,
        scheduled_until=scheduled_until,
    )


def _key(row: dict[str, Any], url: str | None, title: str, started_raw: Any) -> str:
    """The vendor's incident id: ``id``, else the id in the incident URL, else a stable hash."""
    raw_id = row.get("id")
    if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) and str(raw_id).strip():
        return str(raw_id).strip()
    if url:
        m = _ID_IN_URL.search(url)
        if m:
            return m.group(1)
    digest = hashlib.sha1(f"{title}|{started_raw}".encode("utf-8", "replace")).hexdigest()[:16]
    return f"instatus-{digest}"


def _end(start: datetime | None, duration: Any) -> datetime | None:
    """``duration`` is minutes (a number or a numeric string, "60" in the docs)."""
    if start is None or isinstance(duration, bool):
        return None
    try:
        minutes = float(duration) if isinstance(duration, int | float | str) else None
    except ValueError:
        return None
    if minutes is None or not (0 <= minutes < 60 * 24 * 366):
        return None
    try:
        return start + timedelta(minutes=minutes)
    except OverflowError:
        return None


def _time(value: Any) -> datetime | None:
    # base.parse_time can raise OverflowError on year-1/9999 dates with an offset.
    try:
        return parse_time(value)
    except (OverflowError, ValueError):
        return None

