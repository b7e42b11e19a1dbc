"""Checkly-hosted status pages (Mistral's ``status.mistral.ai``): the Nuxt payload in the page.

Checkly pages have no public JSON API; the server-rendered page embeds its data as
``<script type="application/json" id="__NUXT_DATA__">[...]</script>``. This parser takes
either the whole page HTML or that script's JSON text.

The payload is Nuxt's *devalue* format: one flat JSON array whose element 0 is the root;
inside objects and arrays every value is an **index** into the flat array (so the
string ``"IDENTIFIED"`` appears once and is referred to as ``27``). Tagged arrays wrap
values: ``["ShallowReactive", i]``, ``["Reactive", i]``, ``["Ref", i]``, ``["Date", iso]``,
``["Set", …]``, ``["Map", k, v, …]``; negative indexes are ``undefined``/``NaN``/``±Infinity``.
The payload is hydrated with a memo (shared and cyclic references are fine) and a depth limit.

Under ``data`` the keys carry the host or page id:

- ``status-page-resolver-<host>`` → ``statusPage`` {``id``, ``name``, ``customDomain``, ``url``}
- ``unresolved-incidents-<page id>`` → ``incidents`` [{``id``, ``name``, ``severity``
  (MINOR/MEDIUM/MAJOR/CRITICAL), ``created_at``, ``updated_at``, ``lastUpdateStatus``,
  ``services`` [{id, name}], ``incidentUpdates`` [{id, status, description,
  publicIncidentUpdateDate}]}] — every open incident, so ``incident_scope`` is ACTIVE.
- ``uptime-<page id>`` → ``metadata``: groups [{``id``, ``name``, ``services`` [{id, name}]}]
  → group components and their service components.
- ``maintenance-windows-<slug>`` → ``upcoming`` / ``active`` / ``recentlyCompleted`` /
  ``past`` (all empty in the only capture; their item shape is unverified, read leniently).

The payload has **no per-service status**. The page shows a service as operational
unless an open incident names it, so service status is derived: services named by an
unresolved incident take the incident severity (MINOR/MEDIUM → degraded_performance,
MAJOR → partial_outage, CRITICAL → major_outage), services in an active maintenance
window are under_maintenance, the rest operational. Without the unresolved-incidents
key every service is UNKNOWN. Group rows carry the worst status of their services.
Incident URLs are built as ``https://<customDomain>/incidents/<id>`` (unverified form).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from watcher.model import Component, ComponentStatus, IncidentScope, IncidentStatus, Report, Snapshot, Update
from watcher.sources.base import ParseError, SourceOptions, incident_status, load_json, parse_time, text
from watcher.sources.html import load_html

MAX_DEPTH = 64

_WRAPPERS = {"Reactive", "ShallowReactive", "Ref", "ShallowRef", "Object"}
_SEVERITY_STATUS = {
    "minor": ComponentStatus.DEGRADED,
    "medium": ComponentStatus.DEGRADED,
    "major": ComponentStatus.PARTIAL_OUTAGE,
    "critical": ComponentStatus.MAJOR_OUTAGE,
}
_SEVERITY_INDICATOR = {"minor": "minor", "medium": "minor", "major": "major", "critical": "critical"}
_INDICATOR_RANK = {"none": 0, "maintenance": 1, "minor": 2, "major": 3, "critical": 4}


def parse(body: bytes, options: SourceOptions | None = None) -> Snapshot:
    """Parse a Checkly status page (HTML or its ``__NUXT_DATA__`` JSON) into a Snapshot."""
    options = options or SourceOptions()
    values = load_json(_payload_bytes(body))
    if not isinstance(values, list) or not values:
        raise ParseError("Checkly __NUXT_DATA__: expected a non-empty devalue array")
    root = _Hydrator(values).resolve(0, 0)
    data = root.get("data") if isinstance(root, dict) else None
    if not isinstance(data, dict):
        raise ParseError("Checkly __NUXT_DATA__: no 'data' object in the payload root")

    resolver = _find(data, "status-page-resolver-")
    unresolved = _find(data, "unresolved-incidents-")
    uptime = _find(data, "uptime-")
    windows = _find(data, "maintenance-windows-")
    if resolver is None and unresolved is None and uptime is None:
        raise ParseError("not a Checkly status page payload (no resolver/incidents/uptime data)")

    page = resolver.get("statusPage") if isinstance(resolver, dict) else None
    page = page if isinstance(page, dict) else {}
    domain = text(page.get("customDomain"))
    page_url = f"https://{domain}" if domain else (options.base_url or None)

    raw_incidents = _list(unresolved.get("incidents")) if isinstance(unresolved, dict) else None
    incidents = (
        tuple(_incident(i, page_url) for i in raw_incidents if isinstance(i, dict) and _sid(i.get("id")))
        if raw_incidents is not None
        else None
    )
    maintenances = _maintenances(windows)
    components = _components(uptime, raw_incidents, windows)

    indicator = None
    if incidents is not None:
        indicator = "none"
        for r in incidents:
            level = _SEVERITY_INDICATOR.get((r.impact or "").lower(), "minor")
            if _INDICATOR_RANK[level] > _INDICATOR_RANK[indicator]:
                indicator = level
        if indicator == "none" and maintenances and any(
            m.status is IncidentStatus.IN_PROGRESS for m in maintenances
        ):
            indicator = "maintenance"
    return Snapshot(
        components=components,
        incidents=incidents,
        incident_scope=IncidentScope.ACTIVE,
        maintenances=maintenances,
        maintenance_scope=IncidentScope.ACTIVE,
        indicator=indicator,
        page_name=text(page.get("name")) or None,
        page_url=page_url,
    )


def _payload_bytes(body: bytes) -> bytes:
    if not isinstance(body, bytes | bytearray):
        raise ParseError("Checkly body must be bytes")
    head = bytes(body[:512]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return bytes(body)
    soup = load_html(body)
    script = soup.find("script", id="__NUXT_DATA__")
    if script is None:
        for s in soup.find_all("script"):
            if "nuxt" in str(s.get("id") or "").lower() and s.get("type") == "application/json":
                script = s
                break
    if script is None:
        raise ParseError("Checkly page: no <script id='__NUXT_DATA__'> payload found")
    return script.get_text().encode("utf-8")


class _Hydrator:
    """Resolve a devalue flat array, memoised (cycles and shared nodes allowed), depth-limited."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.cache: dict[int, Any] = {}

    def resolve(self, index: Any, depth: int) -> Any:
        if isinstance(index, bool) or not isinstance(index, int):
            raise ParseError(f"Checkly __NUXT_DATA__: expected an index, got {type(index).__name__}")
        if index < 0:
            return {-3: math.nan, -4: math.inf, -5: -math.inf, -6: 0.0}.get(index)
        if index >= len(self.values):
            raise ParseError(f"Checkly __NUXT_DATA__: index {index} out of range")
        if index in self.cache:
            return self.cache[index]
        if depth > MAX_DEPTH:
            raise ParseError(f"Checkly __NUXT_DATA__: nested deeper than {MAX_DEPTH}")
        value = self.values[index]
        if isinstance(value, dict):
            obj: dict[str, Any] = {}
            self.cache[index] = obj
            for k, v in value.items():
                obj[k] = self.resolve(v, depth + 1)
            return obj
        if isinstance(value, list):
            if value and isinstance(value[0], str):
                result = self._tagged(value, depth)
                self.cache[index] = result
                return result
            arr: list[Any] = []
            self.cache[index] = arr
            for v in value:
                arr.append(self.resolve(v, depth + 1))
            return arr
        return value

    def _tagged(self, value: list[Any], depth: int) -> Any:
        tag, args = value[0], value[1:]
        if tag in _WRAPPERS:
            return self.resolve(args[0], depth + 1) if args else None
        if tag in ("Date", "BigInt", "RegExp", "URL"):
            return args[0] if args and isinstance(args[0], str) else None
        if tag == "Set":
            return [self.resolve(a, depth + 1) for a in args]
        if tag in ("Map", "null"):
            out: dict[str, Any] = {}
            for k, v in zip(args[::2], args[1::2], strict=False):
                key = self.resolve(k, depth + 1) if tag == "Map" else k
                out[str(key)] = self.resolve(v, depth + 1)
            return out
        return None  # EmptyRef, NuxtError, Island, …: nothing we read


def _find(data: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    for key, value in data.items():
        if key.startswith(prefix) and isinstance(value, dict):
            return value
    return None


def _list(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else None


def _sid(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    s = str(value).strip()
    return s or None


def _incident(row: dict[str, Any], page_url: str | None) -> Report:
    key = str(_sid(row.get("id")))
    updates = []
    for u in _list(row.get("incidentUpdates")) or ():
        if not isinstance(u, dict):
            continue
        when = _time(u.get("publicIncidentUpdateDate")) or _time(u.get("created_at"))
        updates.append(
            Update(
                id=_sid(u.get("id")) or f"{key}@{u.get('publicIncidentUpdateDate')}",
                status=incident_status(u.get("status")),
                body=text(u.get("description")),
                created_at=when,
            )
        )
    updates.sort(key=lambda u: (u.created_at is None, u.created_at.timestamp() if u.created_at else 0.0))
    status = incident_status(row.get("lastUpdateStatus"))
    if status is IncidentStatus.UNKNOWN and updates:
        status = updates[-1].status
    updated = _time(row.get("updated_at"))
    return Report(
        key=key,
        title=text(row.get("name")) or "(untitled incident)",
        status=status,
        impact=text(row.get("severity")) or None,
        url=f"{page_url.rstrip('/')}/incidents/{key}" if page_url else None,
        started_at=_time(row.get("created_at")),
        updated_at=updated,
        resolved_at=updated if status.is_closed else None,
        components=tuple(_service_names(row.get("services"))),
        updates=tuple(updates),
    )


def _service_names(services: Any) -> list[str]:
    names: dict[str, None] = {}
    for s in _list(services) or ():
        if isinstance(s, dict) and text(s.get("name")):
            names.setdefault(text(s.get("name")))
    return list(names)


def _service_ids(services: Any) -> set[str]:
    return {sid for s in _list(services) or () if isinstance(s, dict) and (sid := _sid(s.get("id")))}


def _maintenances(windows: dict[str, Any] | None) -> tuple[Report, ...] | None:
    if windows is None:
        return None
    out: list[Report] = []
    for bucket, status in (("active", IncidentStatus.IN_PROGRESS), ("upcoming", IncidentStatus.SCHEDULED)):
        for w in _list(windows.get(bucket)) or ():
            if not isinstance(w, dict):
                continue
            title = text(w.get("name")) or text(w.get("title")) or "(untitled maintenance)"
            start = _first_time(w, "startsAt", "starts_at", "startDate", "start_date", "start")
            end = _first_time(w, "endsAt", "ends_at", "endDate", "end_date", "end")
            key = _sid(w.get("id")) or f"maintenance-{title}-{start.isoformat() if start else ''}"
            out.append(
                Report(
                    key=key,
                    title=title,
                    status=status,
                    is_maintenance=True,
                    started_at=start,
                    scheduled_for=start,
                    scheduled_until=end,
                    components=tuple(_service_names(w.get("services"))),
                )
            )
    return tuple(out)


def _components(
    uptime: dict[str, Any] | None, raw_incidents: list[Any] | None, windows: dict[str, Any] | None
) -> tuple[Component, ...] | None:
    groups = _list(uptime.get("metadata")) if isinstance(uptime, dict) else None
    if groups is None:
        return None
    affected: dict[str, ComponentStatus] = {}
    for inc in raw_incidents or ():
        if not isinstance(inc, dict) or incident_status(inc.get("lastUpdateStatus")).is_closed:
            continue
        status = _SEVERITY_STATUS.get(text(inc.get("severity")).lower(), ComponentStatus.DEGRADED)
        for sid in _service_ids(inc.get("services")):
            if sid not in affected or status.severity > affected[sid].severity:
                affected[sid] = status
    in_maintenance: set[str] = set()
    for w in _list(windows.get("active")) or () if isinstance(windows, dict) else ():
        if isinstance(w, dict):
            in_maintenance |= _service_ids(w.get("services"))

    def service_status(sid: str) -> ComponentStatus:
        if sid in affected:
            return affected[sid]
        if sid in in_maintenance:
            return ComponentStatus.MAINTENANCE
        return ComponentStatus.OPERATIONAL if raw_incidents is not None else ComponentStatus.UNKNOWN

    out: list[Component] = []
    for g in groups:
        if not isinstance(g, dict) or _sid(g.get("id")) is None:
            continue
        gid = str(_sid(g.get("id")))
        children = []
        for s in _list(g.get("services")) or ():
            child = _sid(s.get("id")) if isinstance(s, dict) else None
            if child is None:
                continue
            children.append(
                Component(id=child, name=text(s.get("name")) or child, status=service_status(child), group_id=gid)
            )
        worst = max((c.status for c in children), key=lambda st: st.severity, default=ComponentStatus.UNKNOWN)
        out.append(Component(id=gid, name=text(g.get("name")) or gid, status=worst, is_group=True))
        out.extend(children)
    return tuple(out)


def _first_time(obj: dict[str, Any], *keys: str) -> datetime | None:
    for k in keys:
        t = _time(obj.get(k))
        if t is not None:
            return t
    return None


def _time(value: Any) -> datetime | None:
    # base.parse_time can raise OverflowError on year-1/9999 dates with an offset.
    try:
        return parse_time(value)
    except (OverflowError, ValueError):
        return None
