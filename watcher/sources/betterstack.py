"""Better Stack (formerly Better Uptime) status page ``index.json`` — a JSON:API document.

Shape (https://betterstack.com/docs/uptime/status-pages/subscribing-to-status-updates/subscribing-to-api
and a trimmed live capture of status.betterstack.com)::

    {"data": {"id", "type": "status_page",
              "attributes": {"company_name", "aggregate_state", "custom_domain", "subdomain", ...},
              "relationships": {"sections", "resources", "status_reports"}},
     "included": [
        {"type": "status_page_section", "id", "attributes": {"name", "position"}},
        {"type": "status_page_resource", "id",
         "attributes": {"public_name", "status", "status_page_section_id", ...}},
        {"type": "status_report", "id",
         "attributes": {"title", "report_type", "starts_at", "ends_at", "aggregate_state",
                        "affected_resources": [{"status_page_resource_id", "status"}]},
         "relationships": {"status_updates": {"data": [{"id", "type": "status_update"}]}}},
        {"type": "status_update", "id",
         "attributes": {"message", "published_at", "affected_resources": [...]}}]}

Mapping:

- sections become group components (``is_group``, id ``section:<id>``, worst status of
  their resources); resources become components (``public_name``; ``status``:
  ``operational``, ``degraded``, ``downtime``, ``maintenance``; anything else, e.g.
  ``not_monitored``, is UNKNOWN).
- status reports become Reports: ``report_type == "maintenance"`` goes to
  ``maintenances``, anything else (``manual``, ``automatic``) to ``incidents``.
- **Scope: HISTORY.** ``index.json`` lists recent status reports, resolved ones
  included (the live capture shows a report with ``aggregate_state: "resolved"``),
  so a report's absence means nothing; each report carries its own state.
- A report's status comes from its ``aggregate_state``, not ``ends_at`` (live pages
  leave ``ends_at`` null on resolved reports): ``resolved``/``operational`` →
  RESOLVED (COMPLETED for maintenance); ``downtime``/``degraded`` → INVESTIGATING
  (Better Stack publishes no investigating/identified/monitoring stages, so every
  open incident is "investigating"); ``maintenance`` → IN_PROGRESS; anything else
  → UNKNOWN. Values beyond ``operational``/``resolved`` are unverified live.
- Updates: the report's ``status_updates`` (or, when the relationship is missing,
  every ``status_update`` whose ``status_report_id`` points at it), oldest first.
  An update whose affected resources are all back to ``resolved``/``operational``
  is RESOLVED/COMPLETED, otherwise UPDATE; its affected resources become
  ComponentChanges (old status = that resource's status in the previous update).
- ``indicator``: ``operational``→``none``, ``degraded``→``minor``,
  ``downtime``→``major``, ``maintenance``→``maintenance``, other values passed through.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from watcher.model import (
    Component,
    ComponentChange,
    ComponentStatus,
    IncidentScope,
    IncidentStatus,
    Report,
    Snapshot,
    Update,
)
from watcher.sources.base import (
    ParseError,
    SourceOptions,
    component_status,
    expect_dict,
    load_json,
    parse_time,
    text,
)

_INDICATOR = {"operational": "none", "degraded": "minor", "downtime": "major", "maintenance": "maintenance"}
_RESOLVED_WORDS = {"resolved", "operational"}
_MIN_TIME = datetime.min.replace(tzinfo=UTC)


def parse(body: bytes, options: SourceOptions | None = None) -> Snapshot:
    """Parse a Better Stack ``index.json`` into a Snapshot."""
    options = options or SourceOptions()
    doc = expect_dict(load_json(body), "Better Stack index.json")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise ParseError("not a Better Stack index.json: no 'data' object")
    attrs = _attrs(data)
    included = doc.get("included")
    if included is not None and not isinstance(included, list):
        raise ParseError(f"'included': expected a list, got {type(included).__name__}")

    by_type: dict[str, list[dict[str, Any]]] = {}
    for obj in included or ():
        if isinstance(obj, dict) and _id(obj.get("id")) is not None:
            by_type.setdefault(text(obj.get("type")), []).append(obj)

    resources = {_id(r["id"]): r for r in by_type.get("status_page_resource", [])}
    names = {rid: _resource_name(r) for rid, r in resources.items()}
    components = _components(by_type, resources) if included is not None else None

    updates_by_id = {_id(u["id"]): u for u in by_type.get("status_update", [])}
    incidents: list[Report] | None = None
    maintenances: list[Report] | None = None
    if included is not None:
        incidents, maintenances = [], []
        for rep in by_type.get("status_report", []):
            report = _report(rep, updates_by_id, names, _page_url(attrs, options))
            (maintenances if report.is_maintenance else incidents).append(report)

    state = text(attrs.get("aggregate_state")).lower()
    return Snapshot(
        components=components,
        incidents=tuple(incidents) if incidents is not None else None,
        incident_scope=IncidentScope.HISTORY,
        maintenances=tuple(maintenances) if maintenances is not None else None,
        maintenance_scope=IncidentScope.HISTORY,
        indicator=_INDICATOR.get(state, state) or None,
        page_name=text(attrs.get("company_name")) or None,
        page_url=_page_url(attrs, options),
    )


def _attrs(obj: dict[str, Any]) -> dict[str, Any]:
    a = obj.get("attributes")
    return a if isinstance(a, dict) else {}


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    s = str(value).strip()
    return s or None


def _page_url(attrs: dict[str, Any], options: SourceOptions) -> str | None:
    domain = text(attrs.get("custom_domain"))
    if domain:
        return domain if domain.startswith(("http://", "https://")) else f"https://{domain}"
    sub = text(attrs.get("subdomain"))
    if sub:
        return f"https://{sub}.betteruptime.com"
    return options.base_url or None


def _resource_name(r: dict[str, Any]) -> str:
    a = _attrs(r)
    return text(a.get("public_name")) or text(a.get("resource_name")) or text(a.get("name")) or str(r["id"])


def _components(
    by_type: dict[str, list[dict[str, Any]]], resources: dict[str | None, dict[str, Any]]
) -> tuple[Component, ...]:
    sections = {_id(s["id"]): text(_attrs(s).get("name")) for s in by_type.get("status_page_section", [])}
    rows: list[Component] = []
    worst: dict[str, ComponentStatus] = {}
    for rid, r in resources.items():
        a = _attrs(r)
        sid = _id(a.get("status_page_section_id"))
        group_id = f"section:{sid}" if sid is not None and sid in sections else None
        status = component_status(a.get("status"))
        if group_id:
            prev = worst.get(group_id)
            if prev is None or status.severity > prev.severity:
                worst[group_id] = status
        rows.append(Component(id=str(rid), name=_resource_name(r), status=status, group_id=group_id))
    groups = [
        Component(
            id=f"section:{sid}",
            name=name or f"section {sid}",
            status=worst.get(f"section:{sid}", ComponentStatus.UNKNOWN),
            is_group=True,
        )
        for sid, name in sections.items()
    ]
    return tuple(groups + rows)


def _report(
    rep: dict[str, Any],
    updates_by_id: dict[str | None, dict[str, Any]],
    names: dict[str | None, str],
    page_url: str | None,
) -> Report:
    key = str(_id(rep["id"]))
    a = _attrs(rep)
    maintenance = text(a.get("report_type")).lower() == "maintenance"
    state = text(a.get("aggregate_state")).lower()
    status = _report_status(state, maintenance)

    raw_updates = _linked_updates(rep, key, updates_by_id)
    updates = _updates(raw_updates, names, maintenance)
    starts = _time(a.get("starts_at"))
    ends = _time(a.get("ends_at"))
    raw_affected = a.get("affected_resources")
    affected = [x for x in raw_affected if isinstance(x, dict)] if isinstance(raw_affected, list) else []
    comp_names: dict[str, None] = {}
    for x in affected:
        rid = _id(x.get("status_page_resource_id"))
        if rid is not None:
            comp_names.setdefault(names.get(rid, rid))
    for u in updates:
        for ch in u.component_changes:
            comp_names.setdefault(ch.name)
    last_update = max((u.created_at for u in updates if u.created_at), default=None)
    return Report(
        key=key,
        title=text(a.get("title")) or "(untitled report)",
        status=status,
        impact=state or None,
        is_maintenance=maintenance,
        url=f"{page_url.rstrip('/')}/incidents/{key}" if page_url else None,
        started_at=starts,
        updated_at=_time(a.get("updated_at")) or last_update,
        resolved_at=(ends or last_update) if status.is_closed else None,
        scheduled_for=starts if maintenance else None,
        scheduled_until=ends if maintenance else None,
        components=tuple(n for n in comp_names if n),
        updates=updates,
    )


def _report_status(state: str, maintenance: bool) -> IncidentStatus:
    if state in _RESOLVED_WORDS:
        return IncidentStatus.COMPLETED if maintenance else IncidentStatus.RESOLVED
    if state == "maintenance":
        return IncidentStatus.IN_PROGRESS
    if state in ("downtime", "degraded"):
        return IncidentStatus.INVESTIGATING
    return IncidentStatus.UNKNOWN


def _linked_updates(
    rep: dict[str, Any], key: str, updates_by_id: dict[str | None, dict[str, Any]]
) -> list[dict[str, Any]]:
    rel = rep.get("relationships")
    su = rel.get("status_updates") if isinstance(rel, dict) else None
    data = su.get("data") if isinstance(su, dict) else None
    if isinstance(data, list):
        out = []
        for ref in data:
            uid = _id(ref.get("id")) if isinstance(ref, dict) else None
            if uid is not None and uid in updates_by_id:
                out.append(updates_by_id[uid])
        return out
    return [u for u in updates_by_id.values() if _id(_attrs(u).get("status_report_id")) == key]


def _updates(
    raw: list[dict[str, Any]], names: dict[str | None, str], maintenance: bool
) -> tuple[Update, ...]:
    def when(u: dict[str, Any]) -> tuple[bool, datetime, str]:
        t = _time(_attrs(u).get("published_at"))
        return (t is None, t or _MIN_TIME, str(u["id"]))

    out: list[Update] = []
    last_status: dict[str, ComponentStatus] = {}
    for u in sorted(raw, key=when):
        a = _attrs(u)
        changes = []
        words = []
        affected = a.get("affected_resources")
        for x in affected if isinstance(affected, list) else ():
            if not isinstance(x, dict):
                continue
            rid = _id(x.get("status_page_resource_id"))
            if rid is None:
                continue
            word = text(x.get("status")).lower()
            words.append(word)
            new = ComponentStatus.OPERATIONAL if word == "resolved" else component_status(word)
            changes.append(
                ComponentChange(
                    component_id=rid,
                    name=names.get(rid, rid),
                    old_status=last_status.get(rid, ComponentStatus.UNKNOWN),
                    new_status=new,
                )
            )
            last_status[rid] = new
        if words and all(w in _RESOLVED_WORDS for w in words):
            status = IncidentStatus.COMPLETED if maintenance else IncidentStatus.RESOLVED
        else:
            status = IncidentStatus.UPDATE
        out.append(
            Update(
                id=str(u["id"]),
                status=status,
                body=text(a.get("message")),
                created_at=_time(a.get("published_at")),
                component_changes=tuple(changes),
            )
        )
    return tuple(out)


def _time(value: Any) -> datetime | None:
    # base.parse_time can raise OverflowError on year-1/9999 dates with an offset.
    try:
        return parse_time(value)
    except (OverflowError, ValueError):
        return None
