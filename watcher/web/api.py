"""The JSON API behind the board, for scripts: the same data, plus acknowledge and mute.

Every endpoint is described by the OpenAPI 3.1 document at ``/api/v1/openapi.json``
(hand-written below, next to the handlers; a test checks that every route is in it
and that real answers validate against its schemas).

Login is :mod:`watcher.web.auth`'s: a bearer token or HTTP Basic when one is
configured or when bound beyond localhost. ``POST`` bodies must be JSON
(``Content-Type: application/json``): a cross-site form cannot send that without a
CORS preflight, which this API never answers.

Errors are ``{"error": "what went wrong, in plain words"}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.status import incident_json
from watcher.web import views
from watcher.web.auth import SCOPE_KEY, Identity

log = logging.getLogger("watcher.web")

PREFIX = "/api/v1"
MAX_BODY = 16 * 1024
MAX_MUTE = timedelta(days=30)
STATES = ("open", "resolved", "all")
KINDS = ("outage", "degradation", "api_change", "hallucination_spike", "maintenance")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def ok(data, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


# -- serialisers --------------------------------------------------------------------------------


def vendor_json(v: views.VendorView) -> dict:
    out = v.status.to_json()
    out["status_page"] = v.status.vendor.status_page
    out["muted_until"] = _iso(v.muted_until)
    out["mute_reason"] = v.mute_reason
    if v.latency and v.latency_summary:
        s = v.latency_summary
        out["latency"] = {
            "window_hours": 24,
            "bucket_minutes": 15,
            "typical_ms": s.median_ms,
            "latest_ms": s.latest_ms,
            "samples": s.samples,
            "failures": s.failures,
            "series": [
                {
                    "start": _iso(b.start),
                    "median_ms": b.median_ms,
                    "samples": b.samples,
                    "failures": b.failures,
                }
                for b in v.latency
            ],
        }
    else:
        out["latency"] = None
    return out


def ack_json(ack) -> dict | None:
    if ack is None:
        return None
    return {"by": ack.by, "at": _iso(ack.at), "reason": ack.reason, "via": ack.via}


def incident_view_json(iv: views.IncidentView) -> dict:
    out = incident_json(iv.incident)
    out["vendor_name"] = iv.vendor_name
    out["is_maintenance"] = iv.incident.is_maintenance
    out["duration_s"] = iv.duration_s
    out["acknowledgement"] = ack_json(iv.ack)
    out["html_url"] = f"/incidents/{iv.id}"
    return out


def detail_json(d: views.IncidentDetail) -> dict:
    out = incident_view_json(d.view)
    out["events"] = [
        {
            "at": _iso(se.event.at),
            "type": se.event.type.value,
            "text": se.event.text,
            "status": se.event.status,
            "source": se.event.source,
        }
        for se in d.events
    ]
    out["alerts"] = [
        {
            "id": n.id,
            "action": n.action.value,
            "channel": n.channel,
            "target": n.target,
            "route": n.route,
            "state": n.state,
            "delivery": views.delivery_state(n),
            "detail": views.delivery_detail(n),
            "attempts": n.attempts,
            "created_at": _iso(n.created_at),
            "delivered_at": _iso(n.delivered_at),
            "last_error": n.last_error,
            "fallback_of": n.fallback_of,
        }
        for n in d.notifications
    ]
    out["playbook"] = d.playbook
    out["playbook_sent"] = d.playbook_sent
    out["signals"] = d.signals
    out["keys"] = sorted(d.view.incident.keys)
    return out


# -- request helpers ----------------------------------------------------------------------------


async def json_body(request: Request) -> dict:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "send a JSON body with Content-Type: application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"body larger than {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _text(data: dict, key: str, limit: int) -> str | None:
    v = data.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ApiError(400, f"{key!r} must be a string")
    if len(v) > limit:
        raise ApiError(400, f"{key!r} must be at most {limit} characters")
    v = " ".join(v.split()) if key == "by" else v.strip()
    return v or None


def who(request: Request, data: dict, *, required: bool) -> str | None:
    """The Basic-auth user (who logged in), else the body's ``by``."""
    ident: Identity | None = request.scope.get(SCOPE_KEY)
    if ident is None:
        raise ApiError(403, "changes need a login: the login middleware (watcher.web.auth) is not installed")
    if ident.name:
        return ident.name
    by = _text(data, "by", 80)
    if by is None and required:
        raise ApiError(400, "'by' is required: the name of who acknowledges")
    return by


def parse_duration(value) -> float:
    """``"2h"``, ``"30m"``, ``"1h30m"`` (as ``watcher mute --for``), or a number of seconds."""
    from watcher.alerts.commands import parse_duration as read_duration

    if isinstance(value, bool) or value is None:
        raise ApiError(400, '\'for\' is required: how long to mute, e.g. "2h" or "30m"')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = read_duration(value)
        except ValueError as e:
            raise ApiError(400, f"'for': {e}") from None
    else:
        raise ApiError(400, "'for' must be a duration string such as \"2h\", or seconds")
    if not 60 <= seconds <= MAX_MUTE.total_seconds():
        raise ApiError(400, "'for' must be between 1 minute and 30 days")
    return seconds


def _query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not lo <= n <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}")
    return n


def _incident_id(request: Request) -> int:
    """The path's incident id: digits naming a possible incident, else 404 (never a 500 from the store)."""
    raw = request.path_params["incident_id"]
    iid = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
    if not views.valid_id(iid):
        raise ApiError(404, f"no incident #{raw[:40]}")
    return iid


def _since(raw: str | None, now: datetime) -> datetime | None:
    """``since`` as an ISO 8601 time, or a duration back from now (``7d``, ``12h``).

    A duration reaching back beyond year 1 means "since the beginning": no bound, not an error.
    """
    if raw is None:
        return None
    if not raw:
        raise ApiError(400, "since must be an ISO 8601 time or a duration such as 7d or 12h")
    iso = raw.strip().upper().replace("Z", "+00:00")
    for text in (iso, iso.replace(":60", ":59", 1)):  # RFC 3339 allows a leap second
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            continue
        try:
            return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            return None
    from watcher.alerts.commands import parse_duration as read_duration

    try:
        seconds = read_duration(raw)
    except ValueError:
        raise ApiError(400, "since must be an ISO 8601 time or a duration such as 7d or 12h") from None
    try:
        return now - timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return None


def _handled(fn):
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as e:
            return error(e.status, e.message)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# -- routes -------------------------------------------------------------------------------------


_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def routes(ctx) -> list[BaseRoute]:
    """The ``/api/v1`` routes for ``create_app(extra_routes=...)``."""
    watched = {v.id for v in ctx.vendors}

    @_handled
    async def list_vendors(request: Request) -> Response:
        now = ctx.clock()
        return ok(
            {
                "generated_at": _iso(now),
                "last_poll": _iso(views.last_poll(ctx.store)),
                "vendors": [vendor_json(v) for v in views.vendors(ctx, now)],
            }
        )

    @_handled
    async def get_vendor(request: Request) -> Response:
        vid = request.path_params["vendor_id"]
        if vid not in watched:
            raise ApiError(404, f"vendor {vid!r} is not watched")
        now = ctx.clock()
        [v] = [v for v in views.vendors(ctx, now) if v.id == vid]
        return ok(vendor_json(v))

    @_handled
    async def list_incidents(request: Request) -> Response:
        q = request.query_params
        now = ctx.clock()
        state = q.get("state", "all")
        if state not in STATES:
            raise ApiError(400, f"state must be one of {', '.join(STATES)}")
        kind = q.get("kind")
        if kind is not None and kind not in KINDS:
            raise ApiError(400, f"kind must be one of {', '.join(KINDS)}")
        vendor = q.get("vendor") or None
        limit = _query_int(request, "limit", 100, 1, 1000)
        found = views.incidents(
            ctx, now, state=state, vendor=vendor, kind=kind, since=_since(q.get("since"), now), limit=limit
        )
        return ok(
            {
                "generated_at": _iso(now),
                "count": len(found),
                "incidents": [incident_view_json(i) for i in found],
            }
        )

    @_handled
    async def get_incident(request: Request) -> Response:
        iid = _incident_id(request)
        d = views.incident_detail(ctx, iid, ctx.clock())
        if d is None:
            raise ApiError(404, f"no incident #{iid}")
        return ok(detail_json(d))

    @_handled
    async def ack_incident(request: Request) -> Response:
        iid = _incident_id(request)
        data = await json_body(request)
        by = who(request, data, required=True)
        reason = _text(data, "reason", 500)
        if ctx.engine is None:
            raise ApiError(503, "acknowledging is not available (no alert engine)")
        try:
            ctx.engine.acknowledge(iid, by, reason, via="api")
        except LookupError:
            raise ApiError(404, f"no incident #{iid}") from None
        except ValueError as e:
            raise ApiError(409, str(e)) from None
        log.info("incident #%s acknowledged by %s through the API", iid, by)
        d = views.incident_detail(ctx, iid, ctx.clock())
        return ok(incident_view_json(d.view))

    @_handled
    async def mute_vendor(request: Request) -> Response:
        vid = request.path_params["vendor_id"]
        if vid not in watched:
            raise ApiError(404, f"vendor {vid!r} is not watched")
        data = await json_body(request)
        seconds = parse_duration(data.get("for"))
        by = who(request, data, required=False) or "API"
        reason = _text(data, "reason", 500)
        if ctx.engine is None:
            raise ApiError(503, "muting is not available (no alert engine)")
        until = ctx.engine.mute(vid, seconds, reason, by)
        return ok({"vendor": vid, "muted_until": _iso(until), "reason": reason, "by": by})

    @_handled
    async def unmute_vendor(request: Request) -> Response:
        vid = request.path_params["vendor_id"]
        if vid not in watched:
            raise ApiError(404, f"vendor {vid!r} is not watched")
        data = await json_body(request)
        by = who(request, data, required=False) or "API"
        ended = ctx.store.end_mutes(vid, ctx.clock(), by)
        return ok({"vendor": vid, "ended": ended})

    async def openapi_json(request: Request) -> Response:
        return ok(openapi())

    async def not_found(request: Request) -> Response:
        """Under /api/v1 every answer is JSON: an unknown path is a JSON 404, a known one with another
        method a JSON 405 (Starlette's own are plain text)."""
        from starlette.routing import Match

        for route in api_routes[:-1]:
            match, _ = route.matches({**request.scope, "method": "GET"})
            if match is not Match.NONE and request.method not in (route.methods or ()):
                allow = ", ".join(sorted(route.methods or ()))
                resp = error(405, f"{request.method} is not allowed here (allowed: {allow})")
                resp.headers["Allow"] = allow
                return resp
        return error(404, f"no such API path: {request.url.path[:200]}")

    api_routes = [
        Route(f"{PREFIX}/vendors", list_vendors, methods=["GET"]),
        Route(f"{PREFIX}/vendors/{{vendor_id}}", get_vendor, methods=["GET"]),
        Route(f"{PREFIX}/vendors/{{vendor_id}}/mute", mute_vendor, methods=["POST"]),
        Route(f"{PREFIX}/vendors/{{vendor_id}}/unmute", unmute_vendor, methods=["POST"]),
        Route(f"{PREFIX}/incidents", list_incidents, methods=["GET"]),
        Route(f"{PREFIX}/incidents/{{incident_id}}", get_incident, methods=["GET"]),
        Route(f"{PREFIX}/incidents/{{incident_id}}/ack", ack_incident, methods=["POST"]),
        Route(f"{PREFIX}/openapi.json", openapi_json, methods=["GET"]),
        Route(f"{PREFIX}/{{rest:path}}", not_found, methods=_ALL_METHODS),
    ]
    return api_routes


# -- OpenAPI ------------------------------------------------------------------------------------

_TS = {"type": ["string", "null"], "format": "date-time"}
_STR_OR_NULL = {"type": ["string", "null"]}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "503": {"$ref": "#/components/responses/NotServed"},
}


def _errors(*codes: str) -> dict:
    texts = {
        "400": "Bad request: the message says which field is wrong.",
        "403": "Not allowed.",
        "404": "No such vendor or incident.",
        "409": "The incident is already resolved.",
        "413": "Body too large.",
        "415": "The body is not JSON.",
    }
    return {c: _json(_ref("Error"), texts[c]) for c in codes}


_DURATION = "^[ \\t]*([0-9]+(\\.[0-9]+)?[ \\t]*[smhdSMHD][ \\t]*)+$"


SCHEMAS: dict = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What went wrong, in plain words."}},
    },
    "IncidentSummary": {
        "type": "object",
        "description": "An incident as watcher tracks it: one per vendor event, however many sources report it.",
        "required": ["id", "vendor", "title", "kind", "reason", "state", "status", "components", "opened_at"],
        "properties": {
            "id": {"type": "integer"},
            "vendor": {"type": "string", "description": "Vendor id (`watcher` for watcher's own network)."},
            "title": {"type": "string", "description": "The vendor's title (untrusted text: escape it)."},
            "kind": {"type": "string", "enum": list(KINDS)},
            "reason": {"type": "string", "description": "Why it was classified so, in plain words."},
            "state": {"type": "string", "enum": ["open", "resolved"]},
            "status": {
                "type": "string",
                "description": "The vendor's status word (investigating, identified...).",
            },
            "impact": _STR_OR_NULL,
            "phase": {"type": ["string", "null"], "enum": ["upcoming", "in_progress", "completed", None]},
            "components": {"type": "array", "items": {"type": "string"}},
            "opened_at": _TS,
            "started_at": _TS,
            "resolved_at": _TS,
            "scheduled_for": _TS,
            "scheduled_until": _TS,
            "url": _STR_OR_NULL,
            "latest_update": {"type": "string"},
        },
    },
    "Acknowledgement": {
        "type": ["object", "null"],
        "required": ["by", "at", "via"],
        "properties": {
            "by": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "reason": _STR_OR_NULL,
            "via": {"type": "string", "description": "board, api, cli, slack, email link..."},
        },
    },
    "Incident": {
        "allOf": [
            _ref("IncidentSummary"),
            {
                "type": "object",
                "required": ["vendor_name", "is_maintenance", "acknowledgement", "duration_s", "html_url"],
                "properties": {
                    "vendor_name": {"type": "string"},
                    "is_maintenance": {"type": "boolean"},
                    "duration_s": {"type": ["number", "null"], "description": "Seconds, once resolved."},
                    "acknowledgement": _ref("Acknowledgement"),
                    "html_url": {"type": "string", "description": "The incident's page on the board."},
                },
            },
        ]
    },
    "TimelineEvent": {
        "type": "object",
        "required": ["at", "type", "text"],
        "properties": {
            "at": _TS,
            "type": {
                "type": "string",
                "description": "opened, vendor_update, status_changed, kind_changed, components_changed, "
                "merged, maintenance_started, resolved, reopened, measured, backfilled",
            },
            "text": {"type": "string"},
            "status": _STR_OR_NULL,
            "source": {"type": ["string", "null"], "description": "The source (signal) that reported it."},
        },
    },
    "AlertDelivery": {
        "type": "object",
        "description": "One alert written to the outbox, and how its delivery went.",
        "required": ["id", "action", "channel", "target", "state", "delivery", "attempts", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "action": {
                "type": "string",
                "description": "opened, updated, resolved, acknowledged, reminder, escalation",
            },
            "channel": {"type": "string", "description": "slack, email, apprise"},
            "target": {"type": "string"},
            "route": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "sending", "delivered", "dead"]},
            "delivery": {
                "type": "string",
                "enum": ["pending", "sending", "delivered", "dead", "held", "retrying"],
                "description": "state, with pending split into held (quiet hours) and retrying",
            },
            "detail": {"type": "string"},
            "attempts": {"type": "integer"},
            "created_at": _TS,
            "delivered_at": _TS,
            "last_error": _STR_OR_NULL,
            "fallback_of": {"type": ["integer", "null"]},
        },
    },
    "IncidentDetail": {
        "allOf": [
            _ref("Incident"),
            {
                "type": "object",
                "required": ["events", "alerts", "playbook", "playbook_sent", "signals", "keys"],
                "properties": {
                    "events": {"type": "array", "items": _ref("TimelineEvent")},
                    "alerts": {"type": "array", "items": _ref("AlertDelivery")},
                    "playbook": {
                        "type": "string",
                        "description": "Markdown: what to do (from the latest alert).",
                    },
                    "playbook_sent": {
                        "type": "boolean",
                        "description": "false when no alert was sent and the playbook was built for this answer",
                    },
                    "signals": {"type": "array", "items": {"type": "string"}},
                    "keys": {"type": "array", "items": {"type": "string"}},
                },
            },
        ]
    },
    "LatencyBucket": {
        "type": "object",
        "required": ["start", "median_ms", "samples", "failures"],
        "properties": {
            "start": {"type": "string", "format": "date-time"},
            "median_ms": {"type": ["number", "null"]},
            "samples": {"type": "integer"},
            "failures": {"type": "integer"},
        },
    },
    "Latency": {
        "type": ["object", "null"],
        "description": "Our own probes' response time over the last 24 h (first token of a chat "
        "completion, else the model list), in 15-minute buckets; null when the vendor is not probed.",
        "required": ["window_hours", "bucket_minutes", "samples", "failures", "series"],
        "properties": {
            "window_hours": {"type": "integer"},
            "bucket_minutes": {"type": "integer"},
            "typical_ms": {"type": ["number", "null"]},
            "latest_ms": {"type": ["number", "null"]},
            "samples": {"type": "integer"},
            "failures": {"type": "integer"},
            "series": {"type": "array", "items": _ref("LatencyBucket")},
        },
    },
    "Vendor": {
        "type": "object",
        "required": ["vendor", "name", "state", "reason", "incidents", "maintenances", "latency"],
        "properties": {
            "vendor": {"type": "string"},
            "name": {"type": "string"},
            "state": {
                "type": "string",
                "enum": ["operational", "degraded", "outage", "maintenance", "unknown"],
            },
            "reason": {"type": "string"},
            "incidents": {"type": "array", "items": _ref("IncidentSummary")},
            "maintenances": {"type": "array", "items": _ref("IncidentSummary")},
            "failing_sources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"source": {"type": "string"}, "error": _STR_OR_NULL, "kind": _STR_OR_NULL},
                },
            },
            "components": {
                "type": "array",
                "description": "Per-component truth: the page's status, the state after open incidents naming it, "
                "and whether it counts for this team (vendors.<id>.uses).",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "status": _STR_OR_NULL,
                        "state": {"type": "string"},
                        "used": {"type": "boolean"},
                        "incidents": {"type": "array", "items": {"type": ["integer", "null"]}},
                    },
                },
            },
            "status_page": _STR_OR_NULL,
            "muted_until": _TS,
            "mute_reason": _STR_OR_NULL,
            "latency": _ref("Latency"),
        },
    },
    "VendorList": {
        "type": "object",
        "required": ["generated_at", "vendors"],
        "properties": {
            "generated_at": {"type": "string", "format": "date-time"},
            "last_poll": _TS,
            "vendors": {"type": "array", "items": _ref("Vendor")},
        },
    },
    "IncidentList": {
        "type": "object",
        "required": ["generated_at", "count", "incidents"],
        "properties": {
            "generated_at": {"type": "string", "format": "date-time"},
            "count": {"type": "integer"},
            "incidents": {"type": "array", "items": _ref("Incident")},
        },
    },
    "AckRequest": {
        "type": "object",
        "required": ["by"],
        "properties": {
            "by": {
                "type": "string",
                "maxLength": 80,
                "pattern": "[^\\s\\x1c-\\x1f\\x85]",
                "description": "Who acknowledges (not only blanks). When logged in with HTTP Basic the user name "
                "is recorded instead, and this may be omitted.",
            },
            "reason": {"type": ["string", "null"], "maxLength": 500},
        },
    },
    "MuteRequest": {
        "type": "object",
        "required": ["for"],
        "properties": {
            "for": {
                "oneOf": [
                    {"type": "string", "pattern": _DURATION, "examples": ["2h", "30m", "1h30m", "1d"]},
                    {"type": "number", "minimum": 60, "maximum": 30 * 86400},
                ],
                "description": "How long: a duration (s, m, h, d) or seconds; 1 minute to 30 days.",
            },
            "reason": {"type": ["string", "null"], "maxLength": 500},
            "by": {"type": ["string", "null"], "maxLength": 80},
        },
    },
    "MuteResult": {
        "type": "object",
        "required": ["vendor", "muted_until", "by"],
        "properties": {
            "vendor": {"type": "string"},
            "muted_until": {"type": "string", "format": "date-time"},
            "reason": _STR_OR_NULL,
            "by": {"type": "string"},
        },
    },
    "UnmuteResult": {
        "type": "object",
        "required": ["vendor", "ended"],
        "properties": {"vendor": {"type": "string"}, "ended": {"type": "integer"}},
    },
}

_VENDOR_ID = {"name": "vendor_id", "in": "path", "required": True, "schema": {"type": "string"}}
_INCIDENT_ID = {
    "name": "incident_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
}


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


PATHS: dict = {
    f"{PREFIX}/vendors": {
        "get": {
            "operationId": "listVendors",
            "summary": "Every watched vendor with its state, reason, open incidents and 24 h latency",
            "responses": {
                "200": _json(_ref("VendorList"), "The vendors, in the configured order."),
                **_ERRORS,
            },
        }
    },
    f"{PREFIX}/vendors/{{vendor_id}}": {
        "get": {
            "operationId": "getVendor",
            "summary": "One watched vendor",
            "parameters": [_VENDOR_ID],
            "responses": {"200": _json(_ref("Vendor"), "The vendor."), **_errors("404"), **_ERRORS},
        }
    },
    f"{PREFIX}/vendors/{{vendor_id}}/mute": {
        "post": {
            "operationId": "muteVendor",
            "summary": "Mute a vendor's alerts for a while (it is still watched)",
            "description": "Nothing queued during the mute is sent afterwards. Like `watcher mute VENDOR --for 2h`.",
            "parameters": [_VENDOR_ID],
            "requestBody": _body("MuteRequest"),
            "responses": {
                "200": _json(_ref("MuteResult"), "Muted."),
                **_errors("400", "403", "404", "413", "415"),
                **_ERRORS,
            },
        }
    },
    f"{PREFIX}/vendors/{{vendor_id}}/unmute": {
        "post": {
            "operationId": "unmuteVendor",
            "summary": "End a vendor's mutes now",
            "parameters": [_VENDOR_ID],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": _json(_ref("UnmuteResult"), "How many mutes ended."),
                **_errors("403", "404", "415"),
                **_ERRORS,
            },
        }
    },
    f"{PREFIX}/incidents": {
        "get": {
            "operationId": "listIncidents",
            "summary": "Incidents, newest first",
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(STATES), "default": "all"},
                },
                {"name": "vendor", "in": "query", "schema": {"type": "string"}},
                {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(KINDS)}},
                {
                    "name": "since",
                    "in": "query",
                    "description": "Started at or after: an ISO 8601 time, or a duration back from now (7d, 12h).",
                    "schema": {
                        "anyOf": [
                            {"type": "string", "format": "date-time"},
                            {"type": "string", "pattern": _DURATION},
                        ]
                    },
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ],
            "responses": {"200": _json(_ref("IncidentList"), "The incidents."), **_errors("400"), **_ERRORS},
        }
    },
    f"{PREFIX}/incidents/{{incident_id}}": {
        "get": {
            "operationId": "getIncident",
            "summary": "One incident with its timeline, the alerts sent and their delivery, and its playbook",
            "parameters": [_INCIDENT_ID],
            "responses": {"200": _json(_ref("IncidentDetail"), "The incident."), **_errors("404"), **_ERRORS},
        }
    },
    f"{PREFIX}/incidents/{{incident_id}}/ack": {
        "post": {
            "operationId": "acknowledgeIncident",
            "summary": "Acknowledge an open incident: reminders and escalation stop",
            "parameters": [_INCIDENT_ID],
            "requestBody": _body("AckRequest"),
            "responses": {
                "200": _json(_ref("Incident"), "Acknowledged; the incident as it is now."),
                **_errors("400", "403", "404", "409", "413", "415"),
                **_ERRORS,
            },
        }
    },
    f"{PREFIX}/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                **_ERRORS,
            },
        }
    },
}


def openapi() -> dict:
    """The OpenAPI 3.1 document of this API."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("watcher")
    except PackageNotFoundError:
        ver = "0"
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "watcher",
            "version": ver,
            "description": (
                "The state of the AI vendors watcher watches, their incidents, and the actions of the status "
                "board (acknowledge, mute), for scripts. Login: none when watcher is bound to localhost and no "
                "login is configured; otherwise `Authorization: Bearer <web.auth_token>` or HTTP Basic "
                "(web.username / web.password). POST bodies are JSON. Vendor text (titles, updates, component "
                "names) is untrusted: escape it wherever you display it."
            ),
        },
        "security": [{"bearerAuth": []}, {"basicAuth": []}, {}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "web.auth_token"},
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "web.username / web.password",
                },
            },
            "responses": {
                "Unauthorized": _json(_ref("Error"), "Login needed: a bearer token or HTTP Basic."),
                "NotServed": _json(
                    _ref("Error"), "Bound beyond localhost with no login configured: the API is not served."
                ),
            },
        },
    }
