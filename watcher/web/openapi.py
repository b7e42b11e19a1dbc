"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

The schemas are generated from the pydantic models of :mod:`watcher.web.api_models` (pydantic's
``models_json_schema``), so a document's shape is written once; what is written here is only what
a model cannot say: the operations (paths, methods, parameters, which document each answers with,
which errors each may give) and the login schemes. ``tests/test_api.py`` checks that every served
route is documented and nothing else is, and validates real answers against these schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from watcher.web.api_models import DOCUMENTS, DURATION_PATTERN, KINDS, PREFIX, STATES

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


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


def _published(schema: Any) -> Any:
    """A generated schema as the document publishes it: without pydantic's titles (the component's name
    says it) and without defaults (they are the server's business, not the client's)."""
    if isinstance(schema, dict):
        return {
            k: _published(v)
            for k, v in schema.items()
            if not (k == "title" and isinstance(v, str)) and k != "default"
        }
    if isinstance(schema, list):
        return [_published(v) for v in schema]
    return schema


def schemas(models: tuple[type[BaseModel], ...] = DOCUMENTS) -> dict[str, Any]:
    """``components.schemas``: one schema per model, and per model they use, referring to each other."""
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    ordered = {m.__name__: defs[m.__name__] for m in models}
    ordered.update({k: v for k, v in defs.items() if k not in ordered})
    return _published(ordered)


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
                            {"type": "string", "pattern": DURATION_PATTERN},
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
            "schemas": schemas(),
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
