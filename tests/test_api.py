"""The JSON API over real HTTP: the board's data for scripts, acknowledge and mute, and its OpenAPI document.

Served as the daemon serves it (tests/board_harness.py); every answer is validated
against the schema the OpenAPI document itself declares for it, so the document
cannot drift from what the API sends.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import board_harness
import jsonschema
import pytest
from board_harness import UPDATE_1, UPDATE_2, BoardWorld
from starlette.routing import Route

from watcher.web import api

# the fixture: ``make(config=None)`` builds a BoardWorld on each store (SQLite, PostgreSQL)
make = board_harness.make

XSS = "<script>alert(1)</script>"


@pytest.fixture
def world(make) -> BoardWorld:
    """A :class:`BoardWorld` on each store: SQLite on a file, PostgreSQL in a fresh schema."""
    return make()


@pytest.fixture
def doc(world) -> dict:
    r = world.http.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()


def validate(doc: dict, schema_name: str, data) -> None:
    """``data`` against ``#/components/schemas/<schema_name>`` of the OpenAPI document (JSON Schema 2020-12)."""
    schema = {**doc, "$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema).validate(data)


def post_json(w: BoardWorld, path: str, body, **headers):
    import json

    return w.http.post(
        path, content=json.dumps(body), headers={"content-type": "application/json", **headers}
    )


# -- OpenAPI ------------------------------------------------------------------------------------


def _openapi_path(path: str) -> str:
    return path.replace("{incident_id:int}", "{incident_id}")


def test_every_api_route_is_in_the_openapi_document_with_its_methods(world, doc):
    assert doc["openapi"] == "3.1.0"
    # the last route answers unknown /api/v1 paths with a JSON 404: not an operation
    routes = [r for r in api.routes(world.ctx) if isinstance(r, Route) and "{rest:path}" not in r.path]
    assert len(routes) >= 8
    for r in routes:
        path = _openapi_path(r.path)
        assert path in doc["paths"], path
        for method in r.methods - {"HEAD"}:
            op = doc["paths"][path].get(method.lower())
            assert op is not None, (method, path)
            assert op["operationId"] and op["summary"] and "200" in op["responses"]
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op.get("parameters", [])), (
                    path,
                    name,
                )
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    served = {(_openapi_path(r.path), m.lower()) for r in routes for m in r.methods - {"HEAD"}}
    assert documented == served, "nothing documented that is not served"
    for required in (
        "/api/v1/vendors",
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}",
        "/api/v1/incidents/{incident_id}/ack",
        "/api/v1/vendors/{vendor_id}/mute",
        "/api/v1/openapi.json",
    ):
        assert required in doc["paths"]


def test_the_openapi_document_is_valid_and_every_reference_resolves(doc):

    def refs(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(x, list):
            for v in x:
                yield from refs(v)

    found = set(refs(doc))
    assert found
    for ref in found:
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    for name in doc["components"]["schemas"]:
        jsonschema.Draft202012Validator.check_schema({**doc, "$ref": f"#/components/schemas/{name}"})
    assert {"bearerAuth", "basicAuth"} <= set(doc["components"]["securitySchemes"])


# -- reading -------------------------------------------------------------------------------------


def test_vendors_as_json_match_the_board(world, doc):
    iid = world.outage()
    world.probe("openai", 40, 0.5)
    world.probe("openai", 5, 0.7)
    r = world.http.get("/api/v1/vendors")
    assert r.status_code == 200
    data = r.json()
    validate(doc, "VendorList", data)
    by_id = {v["vendor"]: v for v in data["vendors"]}
    assert [v["vendor"] for v in data["vendors"]] == ["anthropic", "openai"], "the configured order"
    a, o = by_id["anthropic"], by_id["openai"]
    assert a["state"] == "outage" and a["name"] == "Anthropic" and "Claude API unavailable" in a["reason"]
    assert [i["id"] for i in a["incidents"]] == [iid]
    assert a["latency"] is None and a["muted_until"] is None
    assert o["state"] == "operational"
    assert o["latency"]["samples"] == 2 and o["latency"]["latest_ms"] == pytest.approx(700)
    assert data["generated_at"].startswith("2026-10-07T13:")
    r = world.http.get("/api/v1/vendors/openai")
    assert r.status_code == 200 and r.json()["vendor"] == "openai"
    validate(doc, "Vendor", r.json())
    assert world.http.get("/api/v1/vendors/nope").status_code == 404


def test_incidents_list_filters_by_state_vendor_kind_and_time(world, doc):
    iid = world.outage()
    world.clock.tick(30 * 60)
    world.recover()
    world.clock.tick(60)
    iid2 = world.outage(UPDATE_1, incident_id="zz2second002", name="Second outage")
    assert iid2 != iid

    def get(**params):
        r = world.http.get("/api/v1/incidents", params=params)
        assert r.status_code == 200, r.text
        validate(doc, "IncidentList", r.json())
        return [i["id"] for i in r.json()["incidents"]]

    assert set(get()) == {iid, iid2}
    assert get(state="open") == [iid2]
    assert get(state="resolved") == [iid]
    assert get(vendor="openai") == []
    assert set(get(vendor="anthropic", kind="outage")) == {iid, iid2}
    assert get(kind="maintenance") == []
    assert len(get(limit=1)) == 1
    assert set(get(since="2026-10-07T12:00:00Z")) == {iid, iid2}
    assert get(since="2026-10-08T00:00:00+00:00") == []
    assert set(get(since="1d")) == {iid, iid2}
    resolved = world.http.get("/api/v1/incidents", params={"state": "resolved"}).json()["incidents"][0]
    assert (
        resolved["state"] == "resolved"
        and resolved["duration_s"] > 0
        and resolved["html_url"] == f"/incidents/{iid}"
    )
    for bad in (
        {"state": "closed"},
        {"kind": "fire"},
        {"limit": "0"},
        {"limit": "x"},
        {"since": "yesterday"},
    ):
        r = world.http.get("/api/v1/incidents", params=bad)
        assert r.status_code == 400 and r.json()["error"], bad


def test_one_incident_has_its_timeline_alerts_and_playbook(world, doc):
    iid = world.outage(UPDATE_1)
    world.clock.tick(60)
    world.outage(UPDATE_1, UPDATE_2)
    r = world.http.get(f"/api/v1/incidents/{iid}")
    assert r.status_code == 200
    d = r.json()
    validate(doc, "IncidentDetail", d)
    assert d["title"] == "Claude API unavailable" and d["kind"] == "outage" and d["acknowledgement"] is None
    texts = [e["text"] for e in d["events"]]
    assert (
        "Claude API requests are failing." in texts and "We found the cause and are deploying a fix." in texts
    )
    assert {(a["channel"], a["target"]) for a in d["alerts"]} == {
        ("slack", "C0MKTG"),
        ("email", "team@example.com"),
    }
    assert all(a["state"] == "pending" and a["delivery"] == "pending" for a in d["alerts"])
    assert d["playbook"] and d["playbook_sent"] is True
    assert "anthropic/summary" in d["signals"]
    assert world.http.get("/api/v1/incidents/999").status_code == 404
    assert world.http.get("/api/v1/incidents/abc").status_code == 404


def test_vendor_text_comes_back_as_data_in_json(world):
    world.outage(UPDATE_1, name=f"Outage {XSS} <!channel>")
    r = world.http.get("/api/v1/incidents?state=open")
    assert r.headers["content-type"] == "application/json"
    assert r.json()["incidents"][0]["title"] == f"Outage {XSS} <!channel>"


# -- acknowledge ----------------------------------------------------------------------------------


def test_acknowledge_through_the_api(world, doc):
    iid = world.outage()
    r = post_json(world, f"/api/v1/incidents/{iid}/ack", {"by": "ci-bot", "reason": "scripted"})
    assert r.status_code == 200, r.text
    validate(doc, "Incident", r.json())
    assert r.json()["acknowledgement"] == {
        "by": "ci-bot",
        "at": "2026-10-07T13:00:00+00:00",
        "reason": "scripted",
        "via": "api",
    }
    ack = world.store.ack(iid)
    assert (ack.by, ack.via) == ("ci-bot", "api")
    assert "acknowledged" in [n.action.value for n in world.h.rows()], "the team hears of it"


@pytest.mark.parametrize(
    ("body", "ctype", "status", "says"),
    [
        ({}, "application/json", 400, "'by' is required"),
        ({"by": 42}, "application/json", 400, "'by' must be a string"),
        ({"by": "x", "reason": ["no"]}, "application/json", 400, "'reason' must be a string"),
        ("[1]", "application/json", 400, "JSON object"),
        ("{not json", "application/json", 400, "not valid JSON"),
        ("by=maria", "application/x-www-form-urlencoded", 415, "Content-Type: application/json"),
        ('{"by": "maria"}', "text/plain", 415, "Content-Type: application/json"),
    ],
)
def test_acknowledge_refuses_bad_bodies_and_records_nothing(world, body, ctype, status, says):
    import json

    iid = world.outage()
    content = body if isinstance(body, str) else json.dumps(body)
    r = world.http.post(f"/api/v1/incidents/{iid}/ack", content=content, headers={"content-type": ctype})
    assert r.status_code == status and says in r.json()["error"], r.text
    assert world.store.ack(iid) is None


def test_acknowledge_unknown_or_resolved_and_too_large(world):
    iid = world.outage()
    world.recover()
    assert post_json(world, f"/api/v1/incidents/{iid}/ack", {"by": "x"}).status_code == 409
    assert post_json(world, "/api/v1/incidents/999/ack", {"by": "x"}).status_code == 404
    r = post_json(world, f"/api/v1/incidents/{iid}/ack", {"by": "x", "reason": "y" * 20_000})
    assert r.status_code == 413


def test_basic_login_acknowledges_as_the_logged_in_user_whatever_the_body_says(make, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret")
    w = make({"web": {"host": "0.0.0.0", "username": "maria", "password_file": str(pw)}})
    iid = w.outage()
    assert post_json(w, f"/api/v1/incidents/{iid}/ack", {"by": "maria"}).status_code == 401
    auth = {"authorization": "Basic " + base64.b64encode(b"maria:s3cret").decode()}
    r = post_json(w, f"/api/v1/incidents/{iid}/ack", {"by": "someone else"}, **auth)
    assert r.status_code == 200 and r.json()["acknowledgement"]["by"] == "maria"


def test_bearer_token_needs_a_name_in_the_body(make, tmp_path):
    tok = tmp_path / "tok"
    tok.write_text("tok-abc")
    w = make({"web": {"host": "0.0.0.0", "auth_token_file": str(tok)}})
    iid = w.outage()
    r = w.http.get("/api/v1/incidents")
    assert r.status_code == 401 and r.json()["error"]
    auth = {"authorization": "Bearer tok-abc"}
    assert post_json(w, f"/api/v1/incidents/{iid}/ack", {}, **auth).status_code == 400
    r = post_json(w, f"/api/v1/incidents/{iid}/ack", {"by": "deploy-script"}, **auth)
    assert r.status_code == 200 and w.store.ack(iid).by == "deploy-script"


# -- mute -----------------------------------------------------------------------------------------


def test_mute_a_vendor_for_two_hours_then_unmute(world, doc):
    r = post_json(
        world, "/api/v1/vendors/anthropic/mute", {"for": "2h", "reason": "migration", "by": "maria"}
    )
    assert r.status_code == 200, r.text
    validate(doc, "MuteResult", r.json())
    assert r.json() == {
        "vendor": "anthropic",
        "muted_until": "2026-10-07T15:00:00+00:00",
        "reason": "migration",
        "by": "maria",
    }
    [m] = world.store.active_mutes(world.clock())
    assert (m.vendor, m.until, m.by) == ("anthropic", world.clock() + timedelta(hours=2), "maria")
    # the mute works: an outage now is stored, not alerted
    world.outage()
    assert world.h.rows() == []
    v = world.http.get("/api/v1/vendors/anthropic").json()
    assert v["muted_until"] == "2026-10-07T15:00:00+00:00" and v["mute_reason"] == "migration"
    soup = world.page("/")
    assert "Alerts muted until 15:00 (migration)" in soup.find(id="vendor-anthropic").get_text(" ")
    r = post_json(world, "/api/v1/vendors/anthropic/unmute", {})
    assert r.status_code == 200 and r.json() == {"vendor": "anthropic", "ended": 1}
    validate(doc, "UnmuteResult", r.json())
    assert world.store.active_mutes(world.clock()) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"for": "forever"}, 400),
        ({"for": "0m"}, 400),
        ({"for": "31d"}, 400),
        ({"for": True}, 400),
        ({"for": [1]}, 400),
    ],
)
def test_mute_refuses_bad_durations(world, body, status):
    r = post_json(world, "/api/v1/vendors/openai/mute", body)
    assert r.status_code == status and "'for'" in r.json()["error"]
    assert world.store.active_mutes(world.clock()) == []


def test_mute_takes_seconds_and_refuses_vendors_not_watched(world):
    r = post_json(world, "/api/v1/vendors/openai/mute", {"for": 600})
    assert (
        r.status_code == 200
        and r.json()["muted_until"] == "2026-10-07T13:10:00+00:00"
        and r.json()["by"] == "API"
    )
    r = post_json(world, "/api/v1/vendors/mistral/mute", {"for": "1h"})
    assert r.status_code == 404 and "not watched" in r.json()["error"]


def test_api_is_not_served_beyond_localhost_without_a_login(make):
    w = make({"web": {"host": "0.0.0.0"}})
    r = w.http.get("/api/v1/vendors")
    assert r.status_code == 503 and "WATCHER_WEB__AUTH_TOKEN" in r.json()["error"]
    assert post_json(w, "/api/v1/vendors/openai/mute", {"for": "1h"}).status_code == 503
    assert w.store.active_mutes(w.clock()) == []
