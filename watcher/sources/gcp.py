"""Google Cloud Service Health ``https://status.cloud.google.com/incidents.json``.

The document is a JSON **array** of recent incidents, active and ended
(schema: ``incidents.schema.json``), so ``incident_scope`` is HISTORY and each
Report carries its own status. There is no per-product "current status" object,
so ``components`` is None.

- Filter: keep incidents whose ``affected_products[].id`` intersects
  ``options.product_ids`` (ids are stable, titles are not: Google renames
  Vertex AI products). No product ids configured → keep everything.
- ``key`` = ``id`` (stable); ``title`` = ``external_desc``; ``url`` =
  ``https://status.cloud.google.com/`` + ``uri``.
- Status: ``end`` present → RESOLVED; otherwise from the most recent update's
  status: ``AVAILABLE`` → RESOLVED (recovered, end not yet stamped),
  ``SERVICE_OUTAGE`` / ``SERVICE_DISRUPTION`` / ``SERVICE_INFORMATION`` →
  INVESTIGATING (Google publishes no lifecycle stages, so an open incident is
  "investigating"), anything else → UNKNOWN.
- ``impact`` keeps Google's raw words, ``"<severity> / <status_impact>"``
  (e.g. ``"medium / SERVICE_DISRUPTION"``), or whichever of the two is present.
- Updates from ``updates[]``, oldest first, text kept whole (it can exceed 7,000
  characters; truncation is the renderer's job). Update statuses follow the same
  mapping (``AVAILABLE`` → RESOLVED, the service states → UPDATE).
- ``components`` = affected product titles (``title``, else ``current_title``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from watcher.model import IncidentScope, IncidentStatus, Report, Snapshot, Update
from watcher.sources.base import ParseError, SourceOptions, load_json, object_or_empty, parse_time, text

BASE_URL = "https://status.cloud.google.com/"
_OPEN_STATES = {"SERVICE_OUTAGE", "SERVICE_DISRUPTION", "SERVICE_INFORMATION"}
_MIN_TIME = datetime.min.replace(tzinfo=UTC)


def parse(body: bytes, options: SourceOptions | None = None) -> Snapshot:
    """Parse Google Cloud ``incidents.json`` into a Snapshot (incidents only)."""
    options = options or SourceOptions()
    doc = load_json(body)
    if not isinstance(doc, list):
        raise ParseError(f"Google Cloud incidents.json: expected an array, got {type(doc).__name__}")
    wanted = {p for p in options.product_ids if isinstance(p, str) and p}
    reports = []
    for row in doc:
        if not isinstance(row, dict):
            continue
        key = _str_id(row.get("id"))
        if key is None:
            continue
        raw_products = row.get("affected_products")
        products = [p for p in raw_products if isinstance(p, dict)] if isinstance(raw_products, list) else []
        if wanted and not wanted.intersection(_str_id(p.get("id")) for p in products):
            continue
        reports.append(_report(row, key, products))
    return Snapshot(
        components=None,
        incidents=tuple(reports),
        incident_scope=IncidentScope.HISTORY,
        maintenances=None,
        indicator=None,
        page_name="Google Cloud Service Health",
        page_url=BASE_URL,
    )


def _str_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    s = str(value).strip()
    return s or None


def _report(row: dict[str, Any], key: str, products: list[dict[str, Any]]) -> Report:
    raw_updates = row.get("updates")
    rows = raw_updates if isinstance(raw_updates, list) else []
    updates = [_update(u) for u in rows if isinstance(u, dict)]
    updates.sort(key=lambda u: (u.created_at is None, u.created_at or _MIN_TIME))

    end = _time(row.get("end"))
    mru = object_or_empty(row.get("most_recent_update"))
    latest_word = text(mru.get("status")) or (_raw_status(raw_updates) if updates else "")
    if end is not None or latest_word.upper() == "AVAILABLE":
        status = IncidentStatus.RESOLVED
    elif latest_word.upper() in _OPEN_STATES:
        status = IncidentStatus.INVESTIGATING
    else:
        status = IncidentStatus.UNKNOWN

    severity = text(row.get("severity"))
    status_impact = text(row.get("status_impact"))
    impact = " / ".join(x for x in (severity, status_impact) if x) or None
    uri = text(row.get("uri"))
    url = BASE_URL + uri.lstrip("/") if uri else f"{BASE_URL}incidents/{key}"
    names: dict[str, None] = {}
    for p in products:
        name = text(p.get("title")) or text(p.get("current_title"))
        if name:
            names.setdefault(name)
    return Report(
        key=key,
        title=text(row.get("external_desc")) or text(row.get("service_name")) or "(untitled incident)",
        status=status,
        impact=impact,
        url=url,
        started_at=_time(row.get("begin")) or _time(row.get("created")),
        updated_at=_time(row.get("modified")) or _time(mru.get("when")),
        resolved_at=end,
        components=tuple(names),
        updates=tuple(updates),
    )


def _raw_status(raw_updates: Any) -> str:
    """Status word of the newest entry in ``updates[]`` (used when most_recent_update is absent)."""
    best: tuple[datetime, str] | None = None
    for u in raw_updates if isinstance(raw_updates, list) else ():
        if not isinstance(u, dict):
            continue
        t = _time(u.get("when")) or _time(u.get("created")) or _MIN_TIME
        if best is None or t >= best[0]:
            best = (t, text(u.get("status")))
    return best[1] if best else ""


def _update(u: dict[str, Any]) -> Update:
    word = text(u.get("status"))
    if word.upper() == "AVAILABLE":
        status = IncidentStatus.RESOLVED
    elif word.upper() in _OPEN_STATES:
        status = IncidentStatus.UPDATE
    else:
        status = IncidentStatus.UNKNOWN
    created = _time(u.get("when")) or _time(u.get("created"))
    raw_body = u.get("text")
    body = raw_body if isinstance(raw_body, str) else ""
    # Google edits update text afterwards (``modified`` moves); the posting time is the identity.
    stamp = text(u.get("when")) or text(u.get("created"))
    uid = stamp or hashlib.sha1(f"{word}|{body}".encode("utf-8", "replace")).hexdigest()[:16]
    return Update(id=uid, status=status, body=body.strip(), created_at=created)


def _time(value: Any) -> datetime | None:
    # base.parse_time can raise OverflowError on year-1/9999 dates with an offset.
    try:
        return parse_time(value)
    except (OverflowError, ValueError):
        return None
