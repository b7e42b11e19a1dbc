"""The web app over real HTTP: Slack button clicks and signed acknowledge links.

The app runs under uvicorn (``make_server``, as the daemon runs it) on a free
127.0.0.1 port, backed by a real store and the real AlertEngine (every test that takes a world runs
on SQLite and on PostgreSQL: tests/store_backends.py); requests
go through httpx. Slack's requests are built as Slack sends them (form-encoded
``payload=``, ``X-Slack-Signature`` v0 over the raw body), the clicked button
taken from the message our renderer produced.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

import httpx
import pytest
import store_backends
from slack_sdk.signature import SignatureVerifier
from web_server import WebServer

from watcher.alerts.engine import AlertEngine
from watcher.alerts.model import Alert, AlertAction
from watcher.alerts.signing import ack_link
from watcher.alerts.slack_render import render_message
from watcher.alerts.slack_signature import sign, verify
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from watcher.model import IncidentKind, IncidentStatus
from watcher.web.app import create_app

# the fixture that runs a test on SQLite and on PostgreSQL (see store_backends.py)
backend = store_backends.backend

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ACK_SECRET = "ack-secret-for-tests"


class World:
    """A store with incidents, the engine, and the app served over HTTP."""

    def __init__(
        self, tmp_path, backend, *, signing_secret=SIGNING_SECRET, ack_secret=ACK_SECRET, slack=None, alerts=None
    ):
        """``backend``: the store to run on (tests/store_backends.py); closed with the world."""
        self.settings = Settings.model_validate(
            {
                "watch": ["openai", "anthropic"],
                "storage": backend.storage,
                "slack": slack or {},
                "alerts": alerts or {},
            }
        )
        self.store = backend.open()
        self.engine = AlertEngine(self.settings, self.store, resolve(self.settings))
        self.web = WebServer(
            create_app(self.engine, signing_secret=signing_secret, ack_secret=ack_secret)
        ).start()
        self.http = httpx.Client(base_url=self.web.url, timeout=5, trust_env=False)

    def incident(self, title="Elevated errors on the API", *, resolved=False) -> Incident:
        now = datetime.now(UTC) - timedelta(minutes=10)
        inc = Incident(
            vendor="openai",
            title=title,
            kind=IncidentKind.OUTAGE,
            reason='"errors" in the title',
            opened_at=now,
            updated_at=now,
            started_at=now,
            components=["API"],
            bodies=["We are investigating."],
        )
        if resolved:
            inc.state = IncidentState.RESOLVED
            inc.status = IncidentStatus.RESOLVED
            inc.resolved_at = now + timedelta(minutes=5)
        self.store.save_incident(inc, [IncidentEvent(EventType.OPENED, now, "opened")])
        return inc

    def close(self) -> None:
        self.http.close()
        self.web.stop()
        self.store.close()


@pytest.fixture
def world(tmp_path, backend):
    """A :class:`World` on each store: SQLite on a file, PostgreSQL in a fresh schema."""
    w = World(tmp_path, backend)
    yield w
    w.close()


# -- Slack requests as Slack sends them -------------------------------------------------------


def click_payload(inc: Incident, action_id: str) -> dict:
    """A ``block_actions`` payload for a click on a button of the message we rendered for ``inc``."""
    alert = Alert(
        incident_id=inc.id,
        vendor=inc.vendor,
        vendor_name="OpenAI",
        title=inc.title,
        kind=inc.kind.value,
        reason=inc.reason,
        state=inc.state.value,
        status=inc.status.value,
        action=AlertAction.OPENED,
    )
    text, blocks = render_message(alert)
    actions = next(b for b in blocks if b["type"] == "actions")
    button = next(e for e in actions["elements"] if e["action_id"] == action_id)
    return {
        "type": "block_actions",
        "user": {"id": "U0MARIA42", "username": "maria", "name": "maria", "team_id": "T0TEST"},
        "api_app_id": "A0WATCHER",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": "C0ALERTS",
            "is_ephemeral": False,
        },
        "trigger_id": "3701415066658.3485157640.72f1",
        "team": {"id": "T0TEST", "domain": "watcher-test"},
        "channel": {"id": "C0ALERTS", "name": "ai-alerts"},
        "message": {"type": "message", "ts": "1700000000.000100", "text": text, "blocks": blocks},
        "response_url": "https://hooks.slack.com/actions/T0TEST/1/xyz",
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": actions["block_id"],
                "text": button["text"],
                "value": button["value"],
                "action_ts": "1700000050.123456",
            }
        ],
    }


def form_body(payload) -> bytes:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    return urlencode({"payload": raw}).encode()


def slack_post(world: World, body: bytes, *, ts: str | None = None, secret=SIGNING_SECRET, sig=None, **hdr):
    ts = str(int(time.time())) if ts is None else ts
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig if sig is not None else sign(secret, ts, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    for k, v in hdr.items():
        key = k.replace("_", "-")
        if v is None:
            headers.pop(key, None)
        else:
            headers[key] = v
    return world.http.post("/slack/interactivity", content=body, headers=headers)


def nothing_recorded(world: World, inc: Incident) -> bool:
    return (
        world.store.ack(inc.id) is None
        and world.store.active_mutes(datetime.now(UTC)) == []
        and world.store.audit_log() == []
    )


# -- signatures ---------------------------------------------------------------------------------


def test_our_v0_signature_is_the_one_slack_sdk_computes():
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    expected = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp="1531420618", body=body)
    assert sign(SIGNING_SECRET, "1531420618", body) == expected
    assert verify(SIGNING_SECRET, "1531420618", body, expected, now=1531420618 + 299)
    assert not verify(SIGNING_SECRET, "1531420618", body, expected, now=1531420618 + 301)
    assert not verify(SIGNING_SECRET, "1531420618", body, expected, now=1531420618 - 301)
    assert not verify(SIGNING_SECRET, "1531420618", body + b"x", expected, now=1531420618)
    for junk in ("", "v0=", "v1=" + expected[3:], "v0=zz", "ü"):
        assert not verify(SIGNING_SECRET, "1531420618", body, junk, now=1531420618)
    for ts in ("", "1e9", "-5", " 1531420618", "nan"):
        assert not verify(SIGNING_SECRET, ts, body, expected, now=1531420618)


# -- Slack button clicks --------------------------------------------------------------------


def test_healthz_answers_200(world):
    r = world.http.get("/healthz")
    assert r.status_code == 200 and r.json() == {"ok": True}


def test_signed_acknowledge_click_acknowledges_the_incident_quickly(world):
    inc = world.incident()
    started = time.monotonic()
    r = slack_post(world, form_body(click_payload(inc, "ack")))
    elapsed = time.monotonic() - started

    assert r.status_code == 200
    assert elapsed < 2.0  # Slack shows the user an error after 3 s
    ack = world.store.ack(inc.id)
    assert ack is not None
    assert ack.by == "maria" and ack.via == "slack"
    assert abs((ack.at - datetime.now(UTC)).total_seconds()) < 60
    [entry] = world.store.audit_log()
    assert entry["what"] == "ack" and entry["who"] == "maria"


@pytest.fixture
def admin_world(tmp_path, backend):
    """``world`` where maria (U0MARIA42) is a watcher admin."""
    w = World(tmp_path, backend, slack={"admins": ["U0MARIA42"]})
    yield w
    w.close()


def test_mute_click_by_an_admin_mutes_the_vendor_for_an_hour(admin_world):
    world = admin_world
    inc = world.incident()
    r = slack_post(world, form_body(click_payload(inc, "mute_1h")))

    assert r.status_code == 200
    [mute] = world.store.active_mutes(datetime.now(UTC))
    assert mute.vendor == "openai" and mute.by == "maria"
    assert abs((mute.until - datetime.now(UTC)).total_seconds() - 3600) < 60
    assert world.store.active_mutes(datetime.now(UTC) + timedelta(minutes=61)) == []
    assert world.store.ack(inc.id) is None  # muting is not acknowledging


@pytest.mark.parametrize("admins", [{}, {"admins": ["U0BOSS001"]}, {"admin_usergroup": "S0ADMINS"}])
def test_mute_click_by_a_non_admin_is_refused_and_told_why(tmp_path, slack_server, admins, backend):
    """The Mute 1h button follows /watcher mute's rule: no admin, no mute; the clicker is told, alone."""
    slack_server.set_usergroup("S0ADMINS", ["U0BOSS001"])
    world = World(
        tmp_path, backend, slack={"base_url": slack_server.api_url, "token": slack_server.token, **admins}
    )
    try:
        inc = world.incident()
        payload = click_payload(inc, "mute_1h")
        payload["response_url"] = slack_server.url + "/actions/T0TEST/1/xyz"
        r = slack_post(world, form_body(payload))
        assert r.status_code == 200
        assert world.store.active_mutes(datetime.now(UTC)) == []
        [told] = slack_server.wait_for(lambda s: s.calls("response_url"))
        assert told.args["response_type"] == "ephemeral"
        assert "Only watcher admins may mute vendors" in told.args["text"] or (
            "Nobody may mute vendors from Slack yet" in told.args["text"]
        )
        assert world.store.audit_log() == []
    finally:
        world.close()


def test_forged_signature_is_refused_and_nothing_recorded(world):
    inc = world.incident()
    body = form_body(click_payload(inc, "ack"))
    r = slack_post(world, body, secret="not-the-signing-secret")
    assert r.status_code == 401
    r = slack_post(world, body, sig="v0=" + "0" * 64)
    assert r.status_code == 401
    assert nothing_recorded(world, inc)


def test_body_changed_after_signing_is_refused(world):
    inc = world.incident()
    ts = str(int(time.time()))
    signed = form_body(click_payload(inc, "ack"))
    swapped = form_body(click_payload(inc, "mute_1h"))
    r = slack_post(world, swapped, ts=ts, sig=sign(SIGNING_SECRET, ts, signed))
    assert r.status_code == 401
    assert nothing_recorded(world, inc)


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_stale_or_future_timestamp_is_refused_even_when_correctly_signed(world, age):
    """A captured request replayed later (or a skewed clock) does not act, though its HMAC is right."""
    inc = world.incident()
    ts = str(int(time.time()) - age)
    r = slack_post(world, form_body(click_payload(inc, "ack")), ts=ts)  # signed for that ts
    assert r.status_code == 401
    assert nothing_recorded(world, inc)


@pytest.mark.parametrize(
    "missing",
    [
        {"X_Slack_Signature": None},
        {"X_Slack_Request_Timestamp": None},
        {"X_Slack_Signature": None, "X_Slack_Request_Timestamp": None},
    ],
    ids=["no signature", "no timestamp", "neither"],
)
def test_missing_signature_headers_are_refused(world, missing):
    inc = world.incident()
    r = slack_post(world, form_body(click_payload(inc, "ack")), **missing)
    assert r.status_code in (400, 401)
    assert nothing_recorded(world, inc)


@pytest.mark.parametrize(
    "body",
    [
        b"payload=this+is+not+json",
        b"something=else",
        b"",
        form_body("[1, 2, 3]"),
        form_body('"block_actions"'),
        form_body({"type": "block_actions", "actions": "ack"}),
        form_body({"type": "block_actions", "actions": [1]}),
        form_body({"type": "block_actions", "user": "maria", "actions": []}),
        form_body({"type": "block_actions", "actions": [{"action_id": "delete_everything", "value": "1"}]}),
        form_body("[" * 10000 + "]" * 10000),
        b"payload=%ff%fe",
    ],
    ids=[
        "not json",
        "no payload",
        "empty",
        "json list",
        "json string",
        "actions not a list",
        "action not an object",
        "no actions",
        "unknown action id",
        "deeply nested",
        "bad utf-8",
    ],
)
def test_malformed_payload_is_a_400_not_a_crash(world, body):
    inc = world.incident()
    r = slack_post(world, body)
    assert r.status_code == 400
    assert "Traceback" not in r.text and "Error" not in r.text
    assert nothing_recorded(world, inc)


def test_other_interaction_types_are_ignored_with_200(world):
    inc = world.incident()
    r = slack_post(world, form_body({"type": "view_closed", "user": {"id": "U0MARIA42"}}))
    assert r.status_code == 200
    assert nothing_recorded(world, inc)


def test_click_for_an_unknown_incident_changes_nothing(world):
    inc = world.incident()
    payload = click_payload(inc, "ack")
    payload["actions"][0]["value"] = str(inc.id + 1000)
    r = slack_post(world, form_body(payload))
    assert r.status_code == 200  # Slack's click was well-formed; there is just nothing to ack
    assert nothing_recorded(world, inc)


def test_mute_of_a_vendor_we_do_not_watch_is_refused(world):
    inc = world.incident()
    payload = click_payload(inc, "mute_1h")
    payload["actions"][0]["value"] = "<!channel>"
    slack_post(world, form_body(payload))
    assert nothing_recorded(world, inc)


def test_oversized_request_is_refused_before_it_is_read(world):
    inc = world.incident()
    body = form_body(click_payload(inc, "ack")) + b"&pad=" + b"x" * 100_000
    r = slack_post(world, body)
    assert r.status_code == 413
    assert nothing_recorded(world, inc)


def test_without_a_signing_secret_the_endpoint_refuses_everything(tmp_path, backend):
    w = World(tmp_path, backend, signing_secret=None)
    try:
        inc = w.incident()
        body = form_body(click_payload(inc, "ack"))
        unsigned = w.http.post(
            "/slack/interactivity",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unsigned.status_code >= 400
        signed_with_empty = slack_post(w, body, secret="")
        assert signed_with_empty.status_code >= 400
        assert nothing_recorded(w, inc)
    finally:
        w.close()


# -- acknowledge links from email ---------------------------------------------------------------


class FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"method": a.get("method"), "action": a.get("action"), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def parse_form(html: str) -> dict:
    p = FormParser()
    p.feed(html)
    [form] = p.forms
    return form


def link_for(world: World, inc: Incident, ttl: float = 3600, now: float | None = None) -> str:
    return ack_link(world.web.url, ACK_SECRET, inc.id, ttl, now=now)


def test_ack_link_get_shows_a_confirmation_form_and_does_not_acknowledge(world):
    inc = world.incident()
    r = world.http.get(link_for(world, inc))

    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert "Elevated errors on the API" in r.text
    form = parse_form(r.text)
    assert form["method"] == "post"
    assert {"e", "s", "by", "reason"} <= set(form["fields"])
    assert world.store.ack(inc.id) is None  # a link scanner fetching the URL acknowledges nothing
    world.http.get(link_for(world, inc))
    assert world.store.ack(inc.id) is None


def test_submitting_the_confirmation_form_acknowledges(world):
    inc = world.incident()
    url = link_for(world, inc)
    form = parse_form(world.http.get(url).text)

    fields = {**form["fields"], "by": "Bob from marketing", "reason": "switching to Claude"}
    r = world.http.post(urljoin(url, form["action"]), data=fields)

    assert r.status_code == 200
    assert "acknowledged by Bob from marketing" in r.text
    ack = world.store.ack(inc.id)
    assert ack is not None
    assert (ack.by, ack.reason, ack.via) == ("Bob from marketing", "switching to Claude", "email link")
    # the link acted once: it now says who used it and when, and offers no form
    again = world.http.get(url)
    assert again.status_code == 409 and "<form" not in again.text
    assert "already acknowledged incident" in again.text and "by Bob from marketing at" in again.text


def test_an_ack_link_acts_once_a_replay_changes_nothing_and_sends_nothing(world):
    inc = world.incident()
    url = link_for(world, inc)
    form = parse_form(world.http.get(url).text)
    target = urljoin(url, form["action"])
    assert world.http.post(target, data={**form["fields"], "by": "Bob"}).status_code == 200
    first = world.store.ack(inc.id)
    for name in ("Mallory", "Bob"):
        r = world.http.post(target, data={**form["fields"], "by": name})
        assert r.status_code == 409
        assert "by Bob at" in r.text and "nothing was changed or sent" in r.text
    assert world.store.ack(inc.id) == first
    assert [e["what"] for e in world.store.audit_log()] == ["ack"], "one acknowledgement, one audit line"
    # another, fresh link for an incident already acknowledged does not take it over either
    other = link_for(world, inc, ttl=7200)
    page = world.http.get(other)
    assert "Already acknowledged by Bob at" in page.text
    form2 = parse_form(page.text)
    r = world.http.post(urljoin(other, form2["action"]), data={**form2["fields"], "by": "Mallory"})
    assert r.status_code == 409 and "already acknowledged by Bob" in r.text
    assert world.store.ack(inc.id) == first


@pytest.mark.parametrize(
    "name",
    ["U0VICTIM01", "<@U0VICTIM01>", "@here", "<!channel>", "Bob\nINFO watcher: forged line", "Bob\u202eevil", ""],
)
def test_an_ack_link_takes_a_plain_display_name_only(world, name):
    inc = world.incident()
    url = link_for(world, inc)
    form = parse_form(world.http.get(url).text)
    target = urljoin(url, form["action"])
    r = world.http.post(target, data={**form["fields"], "by": name})
    assert r.status_code == 400
    assert "name" in r.text
    assert world.store.ack(inc.id) is None and world.store.audit_log() == []
    # the link is not spent by a refused name
    assert world.http.post(target, data={**form["fields"], "by": "Maria Dupont"}).status_code == 200
    assert world.store.ack(inc.id).by == "Maria Dupont"


def test_expired_link_is_refused(world):
    inc = world.incident()
    url = link_for(world, inc, ttl=60, now=time.time() - 120)
    assert world.http.get(url).status_code == 403
    e, s = re.search(r"e=(\d+)&s=(\w+)", url).groups()
    r = world.http.post(f"/ack/{inc.id}", data={"e": e, "s": s, "by": "Mallory"})
    assert r.status_code == 403
    assert world.store.ack(inc.id) is None


def test_tampered_links_are_refused(world):
    inc = world.incident()
    other = world.incident("Another incident")
    url = link_for(world, inc)
    e, s = re.search(r"e=(\d+)&s=(\w+)", url).groups()
    attempts = [
        (other.id, e, s),  # the link of one incident used for another
        (inc.id, str(int(e) + 86400), s),  # expiry extended
        (inc.id, e, s[:-1] + ("0" if s[-1] != "0" else "1")),  # signature altered
        (inc.id, e, ""),
        (inc.id, "", s),
        (inc.id, "soon", s),
    ]
    for iid, ee, ss in attempts:
        assert world.http.get(f"/ack/{iid}", params={"e": ee, "s": ss}).status_code == 403
        r = world.http.post(f"/ack/{iid}", data={"e": ee, "s": ss, "by": "Mallory"})
        assert r.status_code == 403
    assert world.http.get(f"/ack/not-a-number?e={e}&s={s}").status_code in (403, 404)
    assert world.store.ack(inc.id) is None and world.store.ack(other.id) is None


def test_ack_page_escapes_the_incident_title(world):
    inc = world.incident('<script>alert("pwned")</script> & <img src=x onerror=alert(1)>')
    r = world.http.get(link_for(world, inc))
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img" not in r.text
    assert "&lt;script&gt;" in r.text


def test_markup_in_the_acknowledger_name_is_refused_and_not_echoed(world):
    inc = world.incident()
    e, s = re.search(r"e=(\d+)&s=(\w+)", link_for(world, inc)).groups()
    r = world.http.post(f"/ack/{inc.id}", data={"e": e, "s": s, "by": "<b>Eve</b>"})
    assert r.status_code == 400 and "plain display name" in r.text
    assert "<b>" not in r.text and "&#x27;&lt;&#x27;" in r.text
    assert world.store.ack(inc.id) is None


def test_a_resolved_incident_cannot_be_acknowledged_by_link(world):
    inc = world.incident(resolved=True)
    url = link_for(world, inc)
    page = world.http.get(url)
    assert page.status_code == 200 and "already resolved" in page.text
    assert "<form" not in page.text
    e, s = re.search(r"e=(\d+)&s=(\w+)", url).groups()
    r = world.http.post(f"/ack/{inc.id}", data={"e": e, "s": s, "by": "Bob"})
    assert r.status_code == 409
    assert world.store.ack(inc.id) is None


def test_a_valid_link_for_a_missing_incident_is_a_404(world):
    url = ack_link(world.web.url, ACK_SECRET, 9999, 3600)
    assert world.http.get(url).status_code == 404


def test_without_an_ack_secret_links_are_refused(tmp_path, backend):
    w = World(tmp_path, backend, ack_secret=None)
    try:
        inc = w.incident()
        url = ack_link(w.web.url, ACK_SECRET, inc.id, 3600)
        assert w.http.get(url).status_code == 403
        e, s = re.search(r"e=(\d+)&s=(\w+)", url).groups()
        assert w.http.post(f"/ack/{inc.id}", data={"e": e, "s": s}).status_code == 403
        assert w.store.ack(inc.id) is None
    finally:
        w.close()


def test_a_huge_declared_body_is_refused_without_waiting_for_it(world):
    """Content-Length of 100 MB and no body sent: answered 413 at once, not after reading (or waiting)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(world.web.url)
    with socket.create_connection((u.hostname, u.port), timeout=3) as sock:
        sock.sendall(
            b"POST /slack/interactivity HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000000\r\n\r\n"
            b"payload="
        )
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.1 413")
