"""Atlassian Statuspage API v2, and incident.io's reduced Statuspage-compatible form.

One parser reads ``summary.json``, ``incidents.json``, ``incidents/unresolved.json``,
``scheduled-maintenances.json`` (and its upcoming/active variants): they share their
object shapes and differ only in which top-level keys are present.

incident.io (OpenAI, Cohere, Perplexity) serves the same paths with keys left out:
no ``scheduled_maintenances``, no component groups, no ``affected_components``,
sometimes no ``incidents`` at all. An absent key becomes ``None`` in the
:class:`~watcher.model.Snapshot` ("not published"), never an empty tuple.
"""

from __future__ import annotations

from typing import Any

from watcher.model import (
    Component,
    ComponentChange,
    IncidentScope,
    Report,
    Snapshot,
    Update,
)
from watcher.sources.base import (
    ParseError,
    SourceOptions,
    component_status,
    expect_dict,
    incident_status,
    list_or_none,
    load_json,
    nested_list,
    object_or_empty,
    parse_time,
    text,
)


def parse(body: bytes, options: SourceOptions | None = None) -> Snapshot:
    """Parse any Statuspage v2 document into a Snapshot."""
    options = options or SourceOptions()
    doc = expect_dict(load_json(body), "Statuspage document")
    page = object_or_empty(doc.get("page"))
    page_url = text(page.get("url")) or options.base_url
    if not any(k in doc for k in ("components", "incidents", "scheduled_maintenances", "status")):
        raise ParseError("not a Statuspage v2 document: none of components/incidents/status present")

    status = object_or_empty(doc.get("status"))
    components = _components(list_or_none(doc, "components"))
    raw_incidents = list_or_none(doc, "incidents")
    raw_maint = list_or_none(doc, "scheduled_maintenances")
    # summary.json lists only unresolved incidents and upcoming/active maintenances,
    # so an incident missing from it has ended; incidents.json is history.
    is_summary = "status" in doc and "components" in doc
    return Snapshot(
        components=components,
        incidents=_reports(raw_incidents, page_url, maintenance=False),
        incident_scope=IncidentScope.ACTIVE if is_summary else IncidentScope.HISTORY,
        maintenances=_reports(raw_maint, page_url, maintenance=True),
        maintenance_scope=IncidentScope.ACTIVE if is_summary else IncidentScope.HISTORY,
        indicator=text(status.get("indicator")) or None,
        page_name=text(page.get("name")) or None,
        page_url=page_url or None,
    )


def _components(rows: list[Any] | None) -> tuple[Component, ...] | None:
    if rows is None:
        return None
    out = []
    for row in rows:
        if not isinstance(row, dict) or not row.get("id"):
            continue
        out.append(
            Component(
                id=str(row["id"]),
                name=text(row.get("name")) or str(row["id"]),
                status=component_status(row.get("status")),
                group_id=str(row["group_id"]) if row.get("group_id") else None,
                is_group=bool(row.get("group")),
            )
        )
    return tuple(out)


def _reports(rows: list[Any] | None, page_url: str | None, *, maintenance: bool) -> tuple[Report, ...] | None:
    if rows is None:
        return None
    return tuple(
        _report(row, page_url, maintenance) for row in rows if isinstance(row, dict) and row.get("id")
    )


def _report(row: dict[str, Any], page_url: str | None, maintenance: bool) -> Report:
    key = str(row["id"])
    what = "scheduled_maintenances[]" if maintenance else "incidents[]"
    updates = [_update(u) for u in nested_list(row, "incident_updates", what) if isinstance(u, dict)]
    updates.sort(key=lambda u: (u.created_at is None, u.created_at))
    names = [text(c.get("name")) for c in nested_list(row, "components", what) if isinstance(c, dict)]
    if not names:  # incident.io omits incident components; updates may still name them
        seen: dict[str, None] = {}
        for u in updates:
            for ch in u.component_changes:
                seen.setdefault(ch.name)
        names = list(seen)
    url = text(row.get("shortlink")) or None
    if page_url:
        url = f"{page_url.rstrip('/')}/incidents/{key}"
    impact = text(row.get("impact")) or None
    started = parse_time(row.get("started_at")) or parse_time(row.get("created_at"))
    # Incidents migrated to incident.io (Perplexity) carry the migration date as created_at,
    # after they were resolved; the real times are in their updates' display_at.
    earliest = min((u.created_at for u in updates if u.created_at is not None), default=None)
    if earliest is not None and (started is None or earliest < started):
        started = earliest
    return Report(
        key=key,
        title=text(row.get("name")) or "(untitled incident)",
        status=incident_status(row.get("status")),
        impact=impact,
        is_maintenance=maintenance or impact == "maintenance" or "scheduled_for" in row,
        url=url,
        started_at=started,
        updated_at=parse_time(row.get("updated_at")),
        resolved_at=parse_time(row.get("resolved_at")),
        scheduled_for=parse_time(row.get("scheduled_for")),
        scheduled_until=parse_time(row.get("scheduled_until")),
        components=tuple(n for n in names if n),
        updates=tuple(updates),
    )


def _update(row: dict[str, Any]) -> Update:
    changes = []
    for c in nested_list(row, "affected_components", "incident_updates[]"):
        if isinstance(c, dict):
            changes.append(
                ComponentChange(
                    component_id=text(c.get("code")),
                    name=text(c.get("name")),
                    old_status=component_status(c.get("old_status")),
                    new_status=component_status(c.get("new_status")),
                )
            )
    # display_at is the time the page shows (authors may backdate it; migrations keep the real one)
    times = [t for t in (parse_time(row.get("created_at")), parse_time(row.get("display_at"))) if t is not None]
    created = min(times) if times else None
    uid = text(row.get("id")) or f"{row.get('status')}@{row.get('created_at')}"
    return Update(
        id=uid,
        status=incident_status(row.get("status")),
        body=text(row.get("body")),
        created_at=created,
        component_changes=tuple(changes),
    )
