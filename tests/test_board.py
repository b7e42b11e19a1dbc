"""The status board over real HTTP: what a marketer sees, acknowledging from it, and the login.

The app runs under uvicorn on a free 127.0.0.1 port (tests/board_harness.py), built
as the daemon builds it; incidents come from Anthropic's real Statuspage payload
served from 127.0.0.1 and polled by the real pipeline into a real store: each test
that takes a world runs on a SQLite file and on a PostgreSQL schema.
Pages are read with BeautifulSoup, as text a reader sees.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import board_harness
import pytest
import scenario
from board_harness import UPDATE_1, UPDATE_2, BoardWorld, text_of
from bs4 import BeautifulSoup

from watcher.alerts.deliver import Transports
from watcher.alerts.slack import SlackBot
from watcher.incidents.model import EventType, Incident, IncidentEvent, MaintenancePhase
from watcher.model import SELF_VENDOR, IncidentKind, IncidentStatus
from watcher.web import charts
from watcher.web.auth import is_loopback

# the fixture: ``make(config=None, transports=None)`` builds a BoardWorld on each store (SQLite, PostgreSQL)
make = board_harness.make

XSS = "<script>alert(1)</script>"
CHANNEL_PING = "<!channel>"


@pytest.fixture
def world(make) -> BoardWorld:
    """A :class:`BoardWorld` on each store: SQLite on a file, PostgreSQL in a fresh schema."""
    return make()


def vendor_card(soup, vendor: str):
    card = soup.find(id=f"vendor-{vendor}")
    assert card is not None, f"no card for {vendor}"
    return card


def ack_form(soup, incident_id: int) -> dict[str, str]:
    card = soup.find(id=f"incident-{incident_id}") or soup
    form = card.find("form", class_="ackform")
    assert form is not None, "no Acknowledge form"
    return {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("type") == "hidden"} | {
        "_action": form["action"]
    }


def post_form(w: BoardWorld, path: str, data: dict, **kw):
    return w.http.post(
        path, content=_urlencode(data), headers={"content-type": "application/x-www-form-urlencoded", **kw}
    )


def _urlencode(data: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(data)


# -- the board at a glance ------------------------------------------------------------------------


def test_every_vendor_shows_its_state_in_words_and_colour_with_the_reason(world):
    world.outage()
    soup = world.page("/")
    anthropic, openai = vendor_card(soup, "anthropic"), vendor_card(soup, "openai")
    assert "Anthropic" in text_of(anthropic) and "Down" in text_of(anthropic.find(class_="badge"))
    assert "st-outage" in anthropic["class"]
    assert "Claude API unavailable" in text_of(anthropic.find(class_="reason"))
    # the per-component truth, the same as `watcher status` and the API
    assert text_of(anthropic.find(class_="components")) == "Claude API (api.anthropic.com): outage"
    assert "Working" in text_of(openai.find(class_="badge")) and "st-operational" in openai["class"]
    assert openai.find(class_="components") is None
    assert text_of(openai.find(class_="reason")) == "all components operational"
    # the worst comes first, and the headline says it in one sentence
    names = [li["data-vendor"] for li in soup.select("ul.vendors > li")]
    assert names == ["anthropic", "openai"]
    assert text_of(soup.find(id="headline")) == "Down: Anthropic. 1 working normally."


def test_all_working_says_so_and_the_page_refreshes_itself_and_fits_a_phone(world):
    soup = world.page("/")
    assert text_of(soup.find(id="headline")) == "All 2 vendors are working normally."
    assert soup.find("meta", attrs={"http-equiv": "refresh"})["content"] == "60"
    assert "width=device-width" in soup.find("meta", attrs={"name": "viewport"})["content"]
    assert "@media (max-width" in soup.find("style").string
    assert soup.find("script") is None, "no JavaScript on the board"
    assert text_of(soup.find(class_="empty")) == "No open incident."


def test_open_incident_shows_kind_age_acknowledgement_and_the_button(world):
    iid = world.outage()
    world.clock.tick(25 * 60)
    soup = world.page("/")
    card = soup.find(id=f"incident-{iid}")
    text = text_of(card)
    assert "Outage" in text_of(card.find(class_="kind"))
    assert "Anthropic" in text and "Claude API unavailable" in text
    assert "for 24 min" in text, text  # started 13:01 by the vendor's clock, now 13:25
    assert "Not acknowledged yet" in text
    assert "Claude API (api.anthropic.com)" in text, "components affected"
    assert card.find("button").get_text(strip=True) == "Acknowledge"
    assert card.find("a")["href"] == f"incidents/{iid}"


def test_acknowledge_from_the_board_on_localhost_records_the_typed_name(world):
    iid = world.outage()
    form = ack_form(world.page("/"), iid)
    r = post_form(world, "/" + form.pop("_action"), {**form, "by": "  Maria  ", "reason": "on it"})
    assert r.status_code == 303 and r.headers["location"] == f"../../?acked={iid}"
    ack = world.store.ack(iid)
    assert (ack.by, ack.reason, ack.via) == ("Maria", "on it", "board")
    soup = world.page(f"/?acked={iid}")
    assert text_of(soup.find(class_="flash")) == f"Incident #{iid} acknowledged by Maria."
    card = soup.find(id=f"incident-{iid}")
    assert "Acknowledged by Maria" in text_of(card)
    assert card.find("form") is None, "no second Acknowledge button"
    # the acknowledgement goes out to everyone who got the alert, like a Slack click
    assert "acknowledged" in [r.action.value for r in world.h.rows()]


def test_acknowledge_redirect_follows_back_to_the_page_it_came_from(world):
    iid = world.outage()
    form = ack_form(world.page(f"/incidents/{iid}"), iid)
    assert form["_action"] == f"{iid}/ack" and form["back"] == "incident"
    r = post_form(world, f"/incidents/{form.pop('_action')}", {**form, "by": "Maria"})
    assert r.status_code == 303
    r = world.http.get(f"/incidents/{iid}/ack", follow_redirects=False)
    assert r.status_code == 405, "GET never acknowledges"
    final = world.http.post(
        f"/incidents/{iid}/ack",
        content=_urlencode({**form, "by": "Jo"}),
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=True,
    )
    assert final.status_code == 200 and str(final.url).endswith(f"/incidents/{iid}?acked={iid}")
    assert "Acknowledged by Jo" in text_of(BeautifulSoup(final.text, "html.parser").find(class_="ackbox"))


@pytest.mark.parametrize("csrf", ["", "0" * 40, None])
def test_acknowledge_without_the_page_token_is_refused(world, csrf):
    iid = world.outage()
    data = {"by": "Mallory", "back": "board"}
    if csrf is not None:
        data["csrf"] = csrf
    r = post_form(world, f"/incidents/{iid}/ack", data)
    assert r.status_code == 403 and "out of date" in r.text
    assert world.store.ack(iid) is None


def test_acknowledge_needs_a_name_on_localhost(world):
    iid = world.outage()
    form = ack_form(world.page("/"), iid)
    r = post_form(world, "/" + form.pop("_action"), {**form, "by": "   "})
    assert r.status_code == 400 and "Type your name" in r.text
    assert world.store.ack(iid) is None


def test_acknowledge_of_a_resolved_or_unknown_incident_says_why(world):
    iid = world.outage()
    form = ack_form(world.page("/"), iid)
    world.recover()
    r = post_form(world, f"/incidents/{iid}/ack", {**form, "by": "Maria"})
    assert r.status_code == 409 and "already resolved" in r.text
    r = post_form(world, "/incidents/999/ack", {**form, "by": "Maria"})
    assert r.status_code == 404 and "no incident #999" in r.text
    assert world.http.get("/incidents/999").status_code == 404


def test_pages_forbid_scripts_and_framing(world):
    r = world.http.get("/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


# -- vendor text is escaped everywhere ----------------------------------------------------------------


def hostile_incident() -> bytes:
    """A real Statuspage document whose title, update and component name carry markup and a Slack ping."""
    doc = json.loads(
        scenario.incident(
            ("investigating", f"Update {XSS} {CHANNEL_PING} <b>bold</b> & more", "2026-10-07T13:01:00Z"),
            name=f"Outage {XSS} {CHANNEL_PING}",
        )
    )
    evil = f"API {XSS}{CHANNEL_PING}"
    for c in doc["components"]:
        if c["name"] == scenario.API:
            c["name"] = evil
    inc = doc["incidents"][0]
    inc["components"][0]["name"] = evil
    for u in inc["incident_updates"]:
        for a in u["affected_components"]:
            a["name"] = evil
    return json.dumps(doc).encode()


def test_vendor_text_is_escaped_on_the_board_and_the_incident_page(world):
    world.h.serve(hostile_incident())
    world.h.poll()
    [inc] = world.store.open_incidents("anthropic")
    assert XSS in inc.title and any(XSS in c for c in inc.components), "the hostile text reached the store"
    for path in ("/", f"/incidents/{inc.id}"):
        r = world.http.get(path)
        assert r.status_code == 200
        assert "<script" not in r.text.lower(), path
        assert "<!channel>" not in r.text and "<b>bold" not in r.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text, path
        soup = BeautifulSoup(r.text, "html.parser")
        assert soup.find("script") is None and soup.find("b") is None
        # a reader sees the text exactly as the vendor wrote it
        assert f"Outage {XSS} {CHANNEL_PING}" in soup.get_text()
    soup = world.page(f"/incidents/{inc.id}")
    assert f"API {XSS}{CHANNEL_PING}" in text_of(soup.find("dl"))
    assert f"Update {XSS} {CHANNEL_PING} <b>bold</b> & more" in soup.find(class_="timeline").get_text()


# -- the incident page --------------------------------------------------------------------------------


@pytest.fixture
def slack(slack_server):
    slack_server.add_channel("C0MKTG")
    return slack_server


def test_incident_page_has_the_whole_timeline_with_every_alert_and_its_delivery(make, slack):
    t = Transports(slack_bot=SlackBot(slack.token, base_url=slack.api_url, timeout=2))  # no email set up
    w = make(transports=t)
    iid = w.outage(UPDATE_1)
    w.h.deliver()
    w.clock.tick(20 * 60)
    w.outage(UPDATE_1, UPDATE_2)
    w.h.deliver()
    w.h.engine.acknowledge(iid, "Maria", "switching to OpenAI", via="slack")
    soup = w.page(f"/incidents/{iid}")
    assert text_of(soup.find("h1")) == "Claude API unavailable"
    items = soup.select("ol.timeline > li")
    texts = [text_of(li) for li in items]
    joined = "\n".join(texts)
    # every vendor update, with the source (signal) that reported it
    assert "Claude API requests are failing." in joined
    assert "We found the cause and are deploying a fix." in joined
    assert "from anthropic/summary" in joined
    # every alert sent, with its delivery state: Slack delivered, email failed (not configured)
    alerts = [li for li in items if "tl-alert" in li["class"]]
    slack_rows = [text_of(li) for li in alerts if "to Slack C0MKTG" in text_of(li)]
    email_rows = [text_of(li) for li in alerts if "to email team@example.com" in text_of(li)]
    assert slack_rows and all("delivered" in t for t in slack_rows[:2]), slack_rows
    assert email_rows and "failed" in email_rows[0] and "email is not configured" in email_rows[0]
    assert any("Alert (opened)" in t for t in slack_rows) and any("Alert (updated)" in t for t in slack_rows)
    # the acknowledgement, in the timeline and on its own
    assert any("Acknowledged by Maria via slack: switching to OpenAI" in t for t in texts)
    assert "Acknowledged by Maria" in text_of(soup.find(class_="ackbox"))
    assert soup.find(class_="ackbox").find("form") is None
    # times run forward
    stamps = [li.find("time")["datetime"] for li in items]
    assert stamps == sorted(stamps)
    assert "anthropic/summary" in text_of(soup.find(id="h-signals").parent)


def test_incident_page_shows_the_playbook_the_alert_carried_as_html_without_raw_html(world):
    world.h.serve(hostile_incident())
    world.h.poll()
    [inc] = world.store.open_incidents("anthropic")
    [first, *_] = world.h.rows(incident_id=inc.id)
    assert first.alert.playbook
    soup = world.page(f"/incidents/{inc.id}")
    box = soup.find(class_="playbook")
    assert text_of(box.find("h2")) == "What to do"
    assert box.find(class_="note") is None, "this playbook was sent"
    md = box.find(class_="md")
    assert md.find(["ul", "p"]) is not None, "Markdown became HTML"
    assert "blog drafts" in text_of(md), "the playbook says what the team uses the vendor for"
    assert md.find("script") is None
    for a in md.find_all("a"):
        assert a["href"].startswith(("http://", "https://"))


def test_incident_never_alerted_still_shows_the_playbook_it_would_carry(make):
    w = make({"routes": []})
    iid = w.outage()
    assert w.h.rows() == []
    soup = w.page(f"/incidents/{iid}")
    assert "no route matched" in text_of(soup.find(class_="playbook").find(class_="note"))
    assert text_of(soup.find(class_="md"))


# -- maintenance and history --------------------------------------------------------------------------


def test_upcoming_maintenance_and_the_last_seven_days_with_durations(world):
    now = world.clock()
    maint = Incident(
        vendor="openai",
        title="Scheduled database upgrade",
        kind=IncidentKind.MAINTENANCE,
        reason="scheduled maintenance",
        opened_at=now,
        updated_at=now,
        is_maintenance=True,
        phase=MaintenancePhase.UPCOMING,
        status=IncidentStatus.SCHEDULED,
        scheduled_for=now + timedelta(days=1, hours=2),
        scheduled_until=now + timedelta(days=1, hours=4),
        components=["API"],
    )
    world.store.save_incident(maint, [IncidentEvent(EventType.OPENED, now, "scheduled")])
    old = Incident(
        vendor="openai",
        title="Long ago",
        kind=IncidentKind.OUTAGE,
        reason="x",
        opened_at=now - timedelta(days=9),
        updated_at=now - timedelta(days=9),
        started_at=now - timedelta(days=9),
        resolved_at=now - timedelta(days=8),
    )
    old.state = old.state.RESOLVED
    world.store.save_incident(old, [])
    iid = world.outage(UPDATE_1)
    world.clock.tick(47 * 60)
    world.recover()
    world.h.poll("openai")  # fresh data, or OpenAI would read "No data" after 47 minutes
    assert world.store.incident(iid).resolved_at is not None
    soup = world.page("/")
    maint_section = text_of(soup.find(id="h-maint").parent)
    assert "OpenAI" in maint_section and "Scheduled database upgrade" in maint_section
    assert "Thu 8 Oct 15:00 – Thu 8 Oct 17:00" in maint_section, maint_section
    history = text_of(soup.find(id="h-history").parent)
    assert "Claude API unavailable" in history and "lasted 46 min" in history, history
    assert "Long ago" not in history, "older than 7 days"
    assert "No open incident." in text_of(soup.find(id="h-open").parent)
    assert text_of(soup.find(id="headline")) == "All 2 vendors are working normally."


def test_our_own_network_down_is_a_banner_not_a_vendor(world):
    now = world.clock()
    inc = Incident(
        vendor=SELF_VENDOR,
        title="watcher's own network is down",
        kind=IncidentKind.OUTAGE,
        reason="no control URL answers",
        opened_at=now,
        updated_at=now,
    )
    world.store.save_incident(inc, [IncidentEvent(EventType.OPENED, now, "opened")])
    soup = world.page("/")
    assert "watcher's own network is down" in text_of(soup.find(class_="banner"))
    assert soup.find(id=f"incident-{inc.id}") is None


# -- latency chart --------------------------------------------------------------------------------


def test_vendor_with_probes_gets_a_24h_latency_chart_and_one_without_gets_none(world):
    for i in range(0, 24 * 12, 1):  # every 5 minutes for a day
        world.probe("openai", minutes_ago=i * 5 + 1, ttft_s=0.4 + (0.4 if i < 6 else 0))
    world.probe("openai", minutes_ago=90, ttft_s=None)
    world.probe("openai", minutes_ago=95, ttft_s=None, error_class="auth")  # our key: not counted
    world.probe("openai", minutes_ago=25 * 60, ttft_s=9.0)  # older than 24 h
    soup = world.page("/")
    chart = vendor_card(soup, "openai").find(class_="chart")
    svg = chart.find("svg")
    assert svg["role"] == "img" and "Response time over the last 24 hours" in svg["aria-label"]
    assert svg.find("polyline") is not None and len(svg.find_all("rect", class_="fail")) == 1
    label = text_of(chart.find(class_="latency"))
    assert label == "Response time, last 24 h: typical 400 ms, now 800 ms; 1 of 289 probes failed", label
    assert vendor_card(soup, "anthropic").find("svg") is None


def test_bucketize_keeps_the_window_and_counts_failures():
    from datetime import UTC, datetime

    end = datetime(2026, 10, 7, 12, 0, tzinfo=UTC)
    samples = [
        (end - timedelta(hours=25), 100.0),  # outside
        (end - timedelta(hours=23, minutes=59), 200.0),
        (end - timedelta(hours=23, minutes=58), 400.0),
        (end - timedelta(minutes=1), None),
        (end, 300.0),
        (end + timedelta(minutes=1), 999.0),  # future: outside
    ]
    got = charts.bucketize(samples, end=end)
    assert [(b.median_ms, b.samples, b.failures) for b in got] == [(300.0, 2, 0), (300.0, 2, 1)]
    assert got[0].start == end - timedelta(hours=24)
    assert charts.bucketize([], end=end) == []
    assert charts.sparkline([], end=end) is None


def test_sparkline_breaks_the_line_where_probes_fell_silent_or_all_failed():
    from datetime import UTC, datetime

    end = datetime(2026, 10, 7, 12, 0, tzinfo=UTC)
    t0 = end - timedelta(hours=24)
    samples = [(t0 + timedelta(minutes=5 * i + 1), 500.0 + i) for i in range(60)]  # 5 h
    samples += [(t0 + timedelta(hours=10, minutes=5 * i + 1), 700.0) for i in range(24)]  # 2 h after a gap
    samples += [(t0 + timedelta(hours=12, minutes=5 * i + 1), None) for i in range(6)]  # all failed
    samples += [(t0 + timedelta(hours=12, minutes=30 + 5 * i + 1), 650.0) for i in range(12)]
    series = charts.bucketize(samples, end=end)
    svg = charts.sparkline(series, end=end)
    doc = BeautifulSoup(svg, "html.parser")
    assert len(doc.find_all("polyline")) == 3
    assert len(doc.find_all("rect", class_="fail")) == 2
    xs = [float(p.split(",")[0]) for pl in doc.find_all("polyline") for p in pl["points"].split()]
    ys = [float(p.split(",")[1]) for pl in doc.find_all("polyline") for p in pl["points"].split()]
    assert all(0 <= x <= 240 for x in xs) and all(0 <= y <= 44 for y in ys)
    assert re.fullmatch(r"[\d\s.,]+", " ".join(pl["points"] for pl in doc.find_all("polyline")))


def test_sparkline_escapes_its_label():
    from datetime import UTC, datetime

    end = datetime(2026, 10, 7, 12, 0, tzinfo=UTC)
    svg = charts.sparkline(charts.bucketize([(end, 5.0)], end=end), end=end, label=f'{XSS}"')
    assert "<script" not in svg and "&lt;script&gt;" in svg and 'aria-label="&lt;script' in svg


# -- login --------------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("watcher.example.com", False),
        ("", False),
    ],
)
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_bound_beyond_localhost_without_a_login_the_board_is_not_served(make):
    w = make({"web": {"host": "0.0.0.0"}})
    for path in ("/", "/incidents/1", "/api/v1/vendors", "/api/v1/openapi.json"):
        r = w.http.get(path)
        assert r.status_code == 503, path
        for name in ("web.host", "WATCHER_WEB__AUTH_TOKEN", "web.username", "WATCHER_WEB__PASSWORD"):
            assert name in r.text, (path, name)
    assert w.http.post("/incidents/1/ack", content="by=x").status_code == 503
    # outside the login: they have their own checks
    assert w.http.get("/healthz").status_code == 200
    assert w.http.get("/ack/1?e=1&s=x").status_code == 403, "the signed-link check answers, not the login"
    assert w.http.post("/slack/interactivity", content=b"payload=x").status_code == 401, (
        "Slack's signature check"
    )
    assert w.http.get("/metrics").status_code == 404, "not refused by the login (no metrics module here)"


@pytest.fixture
def token_file(tmp_path):
    p = tmp_path / "token"
    p.write_text("tok-0123456789abcdef\n")
    return p


def test_bound_beyond_localhost_the_token_opens_the_board_and_the_api(make, token_file):
    w = make({"web": {"host": "0.0.0.0", "auth_token_file": str(token_file)}})
    r = w.http.get("/")
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
    assert w.http.get("/api/v1/vendors").json() == {"error": "Log in to see watcher's board."}
    good = {"authorization": "Bearer tok-0123456789abcdef"}
    assert w.http.get("/", headers=good).status_code == 200
    assert w.http.get("/api/v1/vendors", headers=good).status_code == 200
    for bad in ("Bearer tok-0123456789abcdeX", "Bearer", "tok-0123456789abcdef", "Basic !!!", "Digest x"):
        assert w.http.get("/", headers={"authorization": bad}).status_code == 401, bad
    # a browser cannot send a bearer token: Basic with the token as password works, the user name is kept
    assert w.http.get("/", headers=basic("maria", "tok-0123456789abcdef")).status_code == 200
    assert w.http.get("/", headers=basic("maria", "wrong")).status_code == 401
    assert w.http.get("/healthz").status_code == 200


def test_basic_login_acknowledges_as_the_logged_in_user(make, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple")
    w = make({"web": {"host": "192.0.2.10", "username": "maria", "password_file": str(pw)}})
    iid = w.outage()
    assert w.http.get("/").status_code == 401
    assert w.http.get("/", headers=basic("maria", "wrong")).status_code == 401
    assert w.http.get("/", headers=basic("mallory", "correct horse battery staple")).status_code == 401
    auth = basic("maria", "correct horse battery staple")
    soup = w.page("/", headers=auth)
    card = soup.find(id=f"incident-{iid}")
    assert "as maria" in text_of(card.find("form")) and card.find("input", attrs={"name": "by"}) is None
    form = ack_form(soup, iid)
    r = post_form(w, "/" + form.pop("_action"), {**form, "by": "someone else"}, **auth)
    assert r.status_code == 303
    assert w.store.ack(iid).by == "maria"


def test_acknowledging_needs_the_login_and_a_token_from_the_same_login(make, token_file, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret")
    w = make(
        {
            "web": {
                "host": "0.0.0.0",
                "auth_token_file": str(token_file),
                "username": "maria",
                "password_file": str(pw),
            }
        }
    )
    iid = w.outage()
    form = ack_form(w.page("/", headers=basic("maria", "s3cret")), iid)
    action = "/" + form.pop("_action")
    assert post_form(w, action, {**form, "by": "x"}).status_code == 401, "no login"
    r = post_form(w, action, {**form, "by": "x"}, authorization="Bearer tok-0123456789abcdef")
    assert r.status_code == 403, "the form's token belongs to maria's login"
    assert w.store.ack(iid) is None
    assert post_form(w, action, form, **basic("maria", "s3cret")).status_code == 303


def test_a_configured_login_is_enforced_on_localhost_too(make, token_file):
    w = make({"web": {"host": "127.0.0.1", "auth_token_file": str(token_file)}})
    assert w.http.get("/").status_code == 401
    assert w.http.get("/", headers={"authorization": "Bearer tok-0123456789abcdef"}).status_code == 200


def test_on_localhost_without_login_only_local_host_names_are_answered(world):
    port = world.web.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert world.http.get("/", headers={"host": host}).status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        r = world.http.get("/", headers={"host": host})
        assert r.status_code == 403 and "localhost" in r.text, host
    # alerts.public_url's host is ours too (a reverse proxy in front)
    assert world.http.get("/", headers={"host": "watcher.example.com"}).status_code == 200


def test_a_user_without_a_password_is_no_login(make):
    w = make({"web": {"host": "0.0.0.0", "username": "maria"}})
    r = w.http.get("/")
    assert r.status_code == 503 and "web.username is set but no password" in r.text


def test_recent_changes_show_who_subscribed_muted_and_acknowledged(world):
    now = world.h.clock()
    world.store.subscribe("C0NEWS", "openai", ["outage"], "U0ANA", now)
    world.h.engine.mute("openai", 3600, "migration <script>", "ben")
    soup = world.page("/")
    section = soup.find(id="h-changes").parent
    text = section.get_text(" ", strip=True)
    assert "U0ANA subscribed" in text and "C0NEWS" in text
    assert "ben muted openai" in text
    assert "<script>" not in str(section), "audit text is escaped like any other"


def test_failed_logins_are_logged_without_the_secret_and_throttled_per_address(make, token_file, caplog, monkeypatch):
    import httpx

    from watcher.web import auth

    w = make({"web": {"host": "0.0.0.0", "auth_token_file": str(token_file)}})
    good = {"authorization": "Bearer tok-0123456789abcdef"}
    tries = [f"Bearer guess-{i:04d}-secret" for i in range(auth.LOGIN_FAILURES)]
    for bad in tries:
        assert w.http.get("/", headers={"authorization": bad}).status_code == 401
    r = w.http.get("/", headers={"authorization": "Bearer one-more"})
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 61
    assert "Too many failed logins" in r.text
    assert w.http.get("/", headers=good).status_code == 429, "throttled: even the right token waits"
    assert w.http.get("/api/v1/vendors", headers=good).status_code == 429
    # another address is not held back by this one's failures
    other = httpx.Client(
        base_url=str(w.http.base_url), transport=httpx.HTTPTransport(local_address="127.0.0.2"), trust_env=False
    )
    try:
        assert other.get("/", headers=good).status_code == 200
    finally:
        other.close()
    failed = [r.getMessage() for r in caplog.records if "web login failed" in r.getMessage()]
    assert len(failed) == auth.LOGIN_FAILURES, "one line per failure until throttled, then silence"
    assert all("from 127.0.0.1 (GET /)" in line for line in failed)
    assert "refusing logins from that address" in failed[-1]
    assert not any("guess-" in r.getMessage() or "tok-0123" in r.getMessage() for r in caplog.records)
    # once the failures leave the window, the address may log in again
    later = auth._monotonic() + auth.LOGIN_WINDOW + 1
    monkeypatch.setattr(auth, "_monotonic", lambda: later)
    assert w.http.get("/", headers=good).status_code == 200
