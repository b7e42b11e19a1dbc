"""``/watcher`` slash commands over real HTTP and a real WebSocket, against the Slack stand-in.

The web app runs under uvicorn (``make_server``, as the daemon runs it) on a free
127.0.0.1 port, on the same store and AlertEngine as an :class:`AlertHarness` whose
outbox delivers to the Slack stand-in (tests/slack_server.py); each test that takes a
room runs on SQLite and on PostgreSQL (tests/store_backends.py). Commands are
sent as Slack sends them: form-encoded fields, ``X-Slack-Signature`` v0 over the
raw body. The stand-in also answers ``usergroups.users.list`` (who may mute) and
serves the commands' ``response_url``.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import httpx
import pytest
import scenario
from alerting import AlertHarness
from slack_server import SlackServer
from socket_slack import SlackSocket, run_bridge
from web_server import WebServer

from watcher.alerts.commands import (
    CommandRequest,
    Reply,
    SlashCommands,
    parse,
    parse_duration,
    response_url_allowed,
)
from watcher.alerts.deliver import Transports
from watcher.alerts.slack import SlackBot
from watcher.alerts.slack_signature import sign
from watcher.web.app import create_app

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MKTG, SUBS = "C0MKTG", "C0SUBS"
ADMINS = "S0ADMINS"
BOSS, ANA, MALLORY = "U0BOSS0001", "U0ANA00001", "U0MALLORY1"
UPDATE_1 = ("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z")
UPDATE_2 = ("identified", "We found the cause and are deploying a fix.", "2026-10-07T13:20:00Z")


class Room:
    """The harness (pipeline, engine, outbox → Slack stand-in) plus the web app on the same store."""

    def __init__(
        self, vendor_server, tmp_path, slack: SlackServer, slack_config: dict | None = None, backend=None, **cfg
    ):
        config = {
            "slack": {"token": slack.token, "base_url": slack.api_url, **(slack_config or {})},
            "routes": [{"name": "marketing", "slack_channels": [MKTG]}],
            **cfg,
        }
        transports = Transports(slack_bot=SlackBot(slack.token, base_url=slack.api_url, timeout=2))
        self.h = AlertHarness(vendor_server, tmp_path, config, transports=transports, backend=backend)
        self.slack = slack
        self.web = WebServer(create_app(self.h.engine, signing_secret=SECRET, ack_secret=None)).start()
        self.http = httpx.Client(base_url=self.web.url, timeout=10, trust_env=False)

    @property
    def store(self):
        return self.h.store

    def body(
        self, text: str, *, user: str = ANA, channel: str = SUBS, response_url: str | None = None
    ) -> bytes:
        """The form body Slack posts for ``/watcher <text>``."""
        return urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": "T0TEST",
                "team_domain": "watcher-test",
                "channel_id": channel,
                "channel_name": "ai-alerts",
                "user_id": user,
                "user_name": user.lower()[1:],
                "command": "/watcher",
                "text": text,
                "api_app_id": "A0WATCHER",
                "is_enterprise_install": "false",
                "response_url": response_url or self.slack.response_url_for("cmd"),
                "trigger_id": "3701415066658.3485157640.72f1",
            }
        ).encode()

    def post(
        self, body: bytes, *, path="/slack/commands", ts=None, secret=SECRET, sig=None
    ) -> httpx.Response:
        ts = str(int(time.time())) if ts is None else ts
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sig if sig is not None else sign(secret, ts, body),
        }
        return self.http.post(path, content=body, headers=headers)

    def command(self, text: str, **kw) -> dict:
        """Run ``/watcher <text>`` signed as Slack would; the JSON answer."""
        r = self.post(self.body(text, **kw))
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.http.close()
        self.web.stop()
        self.h.close()


@pytest.fixture
def slack(slack_server):
    for channel in (MKTG, SUBS):
        slack_server.add_channel(channel)
    slack_server.set_usergroup(ADMINS, [BOSS, "U0OTHER001"])
    return slack_server


@pytest.fixture
def make_room(vendor_server, tmp_path, slack, backend):
    """``make_room(slack_config=None, **config)``: a :class:`Room` on each store (SQLite, PostgreSQL)."""
    made = []

    def build(slack_config=None, **cfg) -> Room:
        room = Room(vendor_server, tmp_path / str(len(made)), slack, slack_config, backend=backend, **cfg)
        made.append(room)
        return room

    yield build
    for room in made:
        room.close()


@pytest.fixture
def room(make_room):
    return make_room({"admin_usergroup": ADMINS})


# -- signatures ---------------------------------------------------------------------------------


def test_a_signed_command_is_answered_and_forged_or_replayed_ones_are_refused(room):
    body = room.body("subscribe anthropic")
    ts = str(int(time.time()))
    assert room.post(body, secret="not-the-signing-secret").status_code == 401
    assert room.post(body, sig="v0=" + "0" * 64).status_code == 401
    assert room.post(body, sig="").status_code == 401
    tampered = room.body("subscribe anthropic openai")
    assert room.post(tampered, ts=ts, sig=sign(SECRET, ts, body)).status_code == 401
    for age in (301, 3600, -301):  # captured and replayed later, or from a skewed clock
        assert room.post(body, ts=str(int(time.time()) - age)).status_code == 401
    assert room.store.subscriptions() == [] and room.store.audit_log() == []

    r = room.post(body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert [s.vendor for s in room.store.subscriptions(SUBS)] == ["anthropic"]


def test_a_replayed_button_click_is_refused_too(room):
    room.h.outage(UPDATE_1)
    room.h.poll()
    [inc] = room.store.open_incidents("anthropic")
    payload = {
        "type": "block_actions",
        "user": {"id": ANA, "username": "ana"},
        "actions": [{"type": "button", "action_id": "ack", "value": str(inc.id)}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stale = room.post(body, path="/slack/interactivity", ts=str(int(time.time()) - 600))
    assert stale.status_code == 401 and room.store.ack(inc.id) is None
    assert room.post(body, path="/slack/interactivity").status_code == 200
    assert room.store.ack(inc.id).by == "ana"


def test_without_a_signing_secret_commands_are_refused(vendor_server, tmp_path, slack, backend):
    h = AlertHarness(vendor_server, tmp_path, backend=backend)
    web = WebServer(create_app(h.engine, signing_secret=None, ack_secret=None)).start()
    try:
        r = httpx.post(
            web.url + "/slack/commands",
            content=b"command=%2Fwatcher&text=subscribe+anthropic&channel_id=C0SUBS&user_id=U0ANA",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            trust_env=False,
        )
        assert r.status_code == 503
        assert h.store.subscriptions() == []
    finally:
        web.stop()
        h.close()


# -- subscriptions ---------------------------------------------------------------------------------


def test_a_subscription_made_by_command_changes_where_the_next_alert_goes(room, slack):
    h = room.h
    h.outage(UPDATE_1, incident_id="first0000001", name="Claude API unavailable")
    h.poll()
    h.deliver()
    assert len(slack.messages(MKTG)) == 1 and slack.messages(SUBS) == []
    h.clock.tick(600)
    h.serve(scenario.operational())
    h.poll()
    h.deliver()

    answer = room.command("subscribe anthropic --kinds outage,degradation")
    assert answer["response_type"] == "in_channel"
    assert "<@U0ANA00001> subscribed this channel to Anthropic" in answer["text"]
    [sub] = room.store.subscriptions(SUBS)
    assert (sub.vendor, sub.kinds, sub.created_by) == ("anthropic", ("outage", "degradation"), ANA)

    h.clock.tick(600)
    h.outage(("investigating", "The API is down again.", "2026-10-07T13:25:00Z"), incident_id="second000002")
    h.poll()
    h.deliver()
    [alert] = slack.messages(SUBS)
    assert "Claude API unavailable" in alert.all_text()
    assert "Acknowledge" in alert.all_text(), "the same buttons as a configured route"
    assert len(slack.messages(MKTG)) == 2, "the config route still gets it"
    routes = {(n.channel, n.target, n.route) for n in h.rows() if n.target == SUBS}
    assert routes == {("slack", SUBS, "subscription")}
    assert slack.messages(MKTG)[-1].blocks == alert.blocks, "same message, playbook and buttons"

    h.clock.tick()
    h.outage(
        ("investigating", "The API is down again.", "2026-10-07T13:25:00Z"),
        ("identified", "Fix on its way.", "2026-10-07T13:30:00Z"),
        incident_id="second000002",
    )
    h.poll()
    h.deliver()
    [same] = slack.messages(SUBS)
    assert same.ts == alert.ts and same.edited, "updated in place"
    assert "Fix on its way." in same.all_text()
    assert len(slack.replies(SUBS, alert.ts)) == 1


def test_a_subscription_is_for_its_vendor_and_kinds_only(room, slack):
    room.command("subscribe openai")
    room.command("subscribe anthropic --kinds=degradation")
    room.h.outage(UPDATE_1)
    room.h.poll()
    room.h.deliver()
    assert len(slack.messages(MKTG)) == 1
    assert slack.messages(SUBS) == [], "an Anthropic outage is neither OpenAI nor a degradation"

    room.command("subscribe anthropic", channel=MKTG)  # a channel the config already routes to
    room.h.clock.tick()
    room.h.outage(UPDATE_1, UPDATE_2)
    room.h.poll()
    room.h.deliver()
    assert len(slack.messages(MKTG)) == 1, "still one message, edited: the config route wins"
    assert {n.route for n in room.h.rows()} == {"marketing"}

    assert "needs a list" in room.command("subscribe openai --kinds")["text"]
    room.command("subscribe all --kinds outage", channel="C0ALL")
    assert {(s.vendor, s.kinds) for s in room.store.subscriptions("C0ALL")} == {("*", ("outage",))}


def test_unsubscribe_needs_an_admin_and_stops_the_next_incident(room, slack):
    room.command("subscribe anthropic openai")
    refused = room.command("unsubscribe anthropic", user=MALLORY)
    assert refused["response_type"] == "ephemeral"
    assert "Only watcher admins may unsubscribe channels" in refused["text"]
    assert len(room.store.subscriptions(SUBS)) == 2

    done = room.command("unsubscribe anthropic", user=BOSS)
    assert (
        done["response_type"] == "in_channel" and "unsubscribed this channel from Anthropic" in done["text"]
    )
    assert [s.vendor for s in room.store.subscriptions(SUBS)] == ["openai"]

    room.h.outage(UPDATE_1)
    room.h.poll()
    room.h.deliver()
    assert slack.messages(SUBS) == [] and len(slack.messages(MKTG)) == 1

    listing = room.command("subscriptions", user=MALLORY)
    assert listing["response_type"] == "ephemeral"
    text = listing["text"]
    assert "OpenAI" in text and "`openai`" in text
    assert "<@U0BOSS0001> unsubscribed from anthropic" in text
    assert "<@U0ANA00001> subscribed to anthropic" in text and "Oct 7, 2026, 13:00 UTC" in text
    audit = [(e["who"], e["what"], e["detail"]) for e in reversed(room.store.audit_log())]
    assert audit[-1] == (BOSS, "unsubscribe", "C0SUBS: anthropic")
    assert (
        ANA,
        "subscribe",
        "C0SUBS: openai (outage, degradation, api_change, hallucination_spike, maintenance)",
    ) in audit

    in_route = room.command("subscriptions", channel=MKTG)
    assert "route `marketing`" in in_route["text"]
    assert room.command("unsubscribe all", user=BOSS)["text"].endswith(
        "Incidents already posted here still get their updates and their resolve."
    )
    assert room.store.subscriptions(SUBS) == []


def test_an_unknown_vendor_gets_a_helpful_answer_and_changes_nothing(room):
    for text in ("subscribe opnai", "subscribe openai opnai", "mute opnai 1h"):
        answer = room.command(text, user=BOSS)
        assert answer["response_type"] == "ephemeral"
        assert "Unknown vendor `opnai`" in answer["text"]
        assert "`anthropic`, `openai`" in answer["text"]
    assert room.store.subscriptions() == [] and room.store.audit_log() == []
    bad_kind = room.command("subscribe openai --kinds outage,typo")
    assert "Unknown kind `typo`" in bad_kind["text"] and "`degradation`" in bad_kind["text"]
    dm = room.command("subscribe openai", channel="D0DIRECT")
    assert "run the command in the channel" in dm["text"]
    nothing = room.command("unsubscribe openai", user=BOSS)
    assert "not subscribed to `openai`" in nothing["text"]
    assert room.store.subscriptions() == []


# -- who may mute ------------------------------------------------------------------------------------


def test_a_user_outside_the_admin_group_cannot_mute(room, slack):
    answer = room.command("mute anthropic 2h nobody needs these", user=MALLORY)
    assert answer["response_type"] == "ephemeral"
    assert "Only watcher admins may mute vendors" in answer["text"]
    assert room.store.active_mutes(room.h.clock()) == []
    assert room.store.audit_log() == []
    [lookup] = slack.calls("usergroups.users.list")
    assert lookup.args["usergroup"] == ADMINS
    assert lookup.headers["authorization"] == f"Bearer {slack.token}"

    ok = room.command("mute anthropic 2h vendor says planned work", user=BOSS)
    assert ok["response_type"] == "in_channel"
    assert "<@U0BOSS0001> muted Anthropic until Oct 7, 2026, 15:00 UTC (vendor says planned work)" in ok["text"]
    [mute] = room.store.active_mutes(room.h.clock())
    assert (mute.vendor, mute.by, mute.reason) == ("anthropic", BOSS, "vendor says planned work")
    assert len(slack.calls("usergroups.users.list")) == 1, "the group's members are cached"

    room.h.outage(UPDATE_1)
    room.h.poll()
    room.h.deliver()
    assert slack.messages(MKTG) == [], "muted: no alert"

    assert "Only watcher admins" in room.command("unmute anthropic", user=MALLORY)["text"]
    assert "ended the mute of Anthropic" in room.command("unmute anthropic", user=BOSS)["text"]
    assert room.store.active_mutes(room.h.clock()) == []
    assert [e["what"] for e in reversed(room.store.audit_log())] == ["mute", "unmute"]


def test_with_no_admins_configured_nobody_may_mute_and_the_answer_says_what_to_set(make_room, slack):
    room = make_room()
    answer = room.command("mute openai 1h", user=BOSS)
    assert "watcher has no admins configured" in answer["text"]
    assert "`slack.admins`" in answer["text"] and "`slack.admin_usergroup`" in answer["text"]
    assert room.store.active_mutes(room.h.clock()) == []
    assert "no admins configured" in room.command("unsubscribe openai", user=BOSS)["text"]
    assert slack.calls("usergroups.users.list") == []
    # reading and subscribing stay open
    assert room.command("status")["response_type"] == "ephemeral"
    assert room.command("subscribe openai")["response_type"] == "in_channel"


def test_an_admin_listed_in_the_config_needs_no_lookup(make_room, slack):
    room = make_room({"admins": [BOSS]})
    assert "muted OpenAI" in room.command("mute openai 30m", user=BOSS)["text"]
    assert "Only watcher admins" in room.command("mute openai 30m", user=ANA)["text"]
    assert slack.calls("usergroups.users.list") == []


def test_a_failed_group_lookup_refuses_and_says_why(room, slack):
    slack.revoke_scope("usergroups:read")
    answer = room.command("mute openai 1h", user=BOSS)
    assert "Could not check the admin user group" in answer["text"]
    assert "usergroups:read" in answer["text"]
    assert room.store.active_mutes(room.h.clock()) == []


# -- the 3-second limit and response_url -------------------------------------------------------------


def test_a_command_that_takes_long_answers_in_time_and_completes_through_response_url(room, slack):
    slack.slow("usergroups.users.list", 3.5)
    url = slack.response_url_for("slow")
    started = time.monotonic()
    answer = room.command("mute openai 2h", user=BOSS, response_url=url)
    elapsed = time.monotonic() - started

    assert elapsed < 3.0, "Slack shows the user an error after 3 s"
    assert answer["response_type"] == "ephemeral" and "Working on" in answer["text"]
    assert room.store.active_mutes(room.h.clock()) == []

    [final] = slack.wait_for(lambda s: s.responses("/commands/T0TEST/slow/resp"), timeout=10)
    assert final["response_type"] == "in_channel"
    assert "<@U0BOSS0001> muted OpenAI until" in final["text"]
    [mute] = room.store.active_mutes(room.h.clock())
    assert mute.vendor == "openai" and mute.by == BOSS
    [post] = slack.calls("response_url")
    assert post.headers["content-type"].startswith("application/json")


def test_a_response_url_outside_slack_is_never_posted_to(room, slack):
    with SlackServer() as elsewhere:  # another host:port than slack.base_url
        slack.slow("usergroups.users.list", 2.5)
        answer = room.command("mute openai 2h", user=BOSS, response_url=elsewhere.response_url_for("x"))
        assert "Working on" in answer["text"]
        slack.wait_for(lambda s: room.store.active_mutes(room.h.clock()), timeout=10)
        time.sleep(0.3)
        assert elsewhere.requests == []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.slack.com/commands/T0/1/abc", True),
        ("https://HOOKS.slack.com:443/actions/T0/1/abc", True),
        ("http://hooks.slack.com/commands/T0/1/abc", False),
        ("https://hooks.slack.com.evil.example/commands/x", False),
        ("https://hooks.slack.com@evil.example/commands/x", False),
        ("https://evil.example/?u=https://hooks.slack.com/", False),
        ("https://hooks.slack.com:8443/commands/x", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("file:///etc/passwd", False),
        ("https://hooks.slack.com:99999/x", False),
        ("", False),
        (None, False),
        ("http://127.0.0.1:9/commands/x", True),  # the origin of slack.base_url below
        ("http://127.0.0.1:10/commands/x", False),
    ],
)
def test_which_response_urls_are_allowed(url, ok):
    assert response_url_allowed(url, "http://127.0.0.1:9/api/") is ok


# -- reading ------------------------------------------------------------------------------------------


def test_status_shows_every_vendor_open_incidents_and_who_acknowledged_only_to_the_caller(room, slack):
    room.h.outage(UPDATE_1, name="<!channel> Claude API unavailable")
    room.h.poll()
    room.h.deliver()
    [inc] = room.store.open_incidents("anthropic")

    before = room.command("status")
    assert before["response_type"] == "ephemeral"
    assert f"#{inc.id}" in before["text"] and "_not acknowledged_" in before["text"]

    acked = room.command(f"ack #{inc.id} switching blog drafts to GPT", user=ANA)
    assert acked["response_type"] == "ephemeral"
    assert f"Incident #{inc.id}" in acked["text"] and "acknowledged by <@U0ANA00001>" in acked["text"]
    ack = room.store.ack(inc.id)
    assert (ack.by, ack.reason, ack.via) == (ANA, "switching blog drafts to GPT", "slack command")

    text = room.command("status", user=MALLORY)["text"]
    assert "🔴 *Anthropic*: outage" in text and "🟢 *OpenAI*: operational" in text
    assert f"#{inc.id} *Anthropic* outage" in text
    assert "acknowledged by <@U0ANA00001> at Oct 7, 2026, 13:00 UTC (switching blog drafts to GPT)" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text, "vendor text is escaped"

    room.h.deliver()
    [msg] = slack.messages(MKTG)
    assert "Acknowledged by <@U0ANA00001>" in msg.all_text(), "the alert shows the acknowledgement in place"

    again = room.command(f"ack {inc.id + 99}")
    assert "Not acknowledged: no incident" in again["text"]
    assert "not an incident number" in room.command("ack soon")["text"]


def test_oncall_says_who_is_on_call_now_and_next(make_room):
    room = make_room(
        oncall={
            "people": [
                {"name": "Ana", "slack": ANA},
                {"name": "Bob <script>", "slack": None},
                {"name": "Carla", "slack": "U0CARLA001"},
            ],
            "rotation_days": 7,
            "rotation_start": "2026-10-05",
        }
    )
    answer = room.command("oncall")
    assert answer["response_type"] == "ephemeral"
    text = answer["text"]
    assert "*On call now:* <@U0ANA00001> (Ana), until Oct 12, 2026, 00:00 UTC" in text
    assert "*Next:* *Bob &lt;script&gt;*, from Oct 12, 2026, 00:00 UTC to Oct 19, 2026, 00:00 UTC" in text
    assert "*Then:* <@U0CARLA001> (Carla)" in text


def test_oncall_without_a_rotation_and_help(room):
    assert "No on-call rotation is configured" in room.command("oncall")["text"]
    for text in ("help", "", "  "):
        answer = room.command(text)
        assert answer["response_type"] == "ephemeral"
        for cmd in ("status", "subscribe", "unsubscribe", "ack", "mute", "oncall", "subscriptions"):
            assert f"/watcher {cmd}" in answer["text"]
    unknown = room.command("reboot <!here>")
    assert "I don't know `reboot`" in unknown["text"] and "/watcher status" in unknown["text"]


def test_bad_durations_are_explained(room):
    assert "Cannot read the duration `forever`" in room.command("mute openai forever", user=BOSS)["text"]
    assert "at most" not in room.command("mute openai 90m", user=BOSS)["text"]
    assert "between 1 second and 30 days" in room.command("mute openai 31d", user=BOSS)["text"]
    assert "Usage: `/watcher mute" in room.command("mute openai", user=BOSS)["text"]


# -- pure parts ----------------------------------------------------------------------------------------


def test_parsing():
    p = parse("subscribe OpenAI anthropic --kinds outage,degradation")
    assert (p.name, p.args, p.kinds) == ("subscribe", ["OpenAI", "anthropic"], ["outage", "degradation"])
    assert parse("sub openai --kinds=outage").kinds == ["outage"]
    assert parse("ack 12 we are on it --kinds x").args == ["12", "we", "are", "on", "it", "--kinds", "x"]
    assert parse("").name == "help"
    assert parse_duration("1h30m") == 5400


def test_command_text_entities_are_read_as_typed_and_long_answers_fit_slack():
    req = CommandRequest.from_payload({"text": "ack 3 R&amp;D &lt;3", "user_id": ANA, "user_name": "ana"})
    assert req.text == "ack 3 R&D <3" and req.who == ANA
    assert CommandRequest.from_payload({"user_name": "ana"}).who == "ana"
    long = Reply("\n".join(f"line {i} " + "x" * 80 for i in range(100))).payload()
    assert len(long["text"]) <= 3000
    assert all(len(b["text"]["text"]) <= 3000 for b in long["blocks"])


# -- Socket Mode -------------------------------------------------------------------------------------


def command_envelope(env_id: str, text: str, *, accepts: bool, response_url: str, user=ANA) -> dict:
    return {
        "envelope_id": env_id,
        "type": "slash_commands",
        "accepts_response_payload": accepts,
        "payload": {
            "token": "legacy",
            "team_id": "T0TEST",
            "channel_id": SUBS,
            "channel_name": "ai-alerts",
            "user_id": user,
            "user_name": "ana",
            "command": "/watcher",
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.2.3",
        },
    }


def test_slash_commands_over_socket_mode(make_room, slack):
    from watcher.alerts.socket_mode import SocketModeBridge

    room = make_room({"admin_usergroup": ADMINS})
    envelopes = [
        command_envelope("env-status", "status", accepts=True, response_url=slack.response_url_for("a")),
        command_envelope(
            "env-sub", "subscribe anthropic", accepts=False, response_url=slack.response_url_for("b")
        ),
        command_envelope(
            "env-mute", "mute openai 1h", accepts=True, response_url=slack.response_url_for("c"), user=MALLORY
        ),
    ]
    socket = SlackSocket(envelopes)
    room.web.stop()  # Socket Mode only: the store belongs to this test's loop from here on

    try:
        bridge = run_bridge(
            lambda loop: SocketModeBridge(
                room.h.engine,
                loop,
                "xapp-1-test",
                base_url=socket.api_url,
                bot_token=slack.token,
                commands=SlashCommands(room.h.engine),  # user groups and response_url: the Slack stand-in
            ),
            lambda: len(socket.acks) == 3 and slack.responses("/commands/T0TEST/b/resp"),
        )
    finally:
        socket.close()
    answered = bridge.commands_answered
    assert answered == 3
    acks = {a["envelope_id"]: a for a in socket.acks}
    assert set(acks) == {"env-status", "env-sub", "env-mute"}, "every envelope is acknowledged"

    status = acks["env-status"]["payload"]
    assert status["response_type"] == "ephemeral" and "*Anthropic*" in status["text"]

    assert "payload" not in acks["env-sub"], "no response payload when the envelope does not accept one"
    [posted] = slack.responses("/commands/T0TEST/b/resp")
    assert (
        posted["response_type"] == "in_channel" and "subscribed this channel to Anthropic" in posted["text"]
    )
    assert [s.vendor for s in room.store.subscriptions(SUBS)] == ["anthropic"]

    assert "Only watcher admins may mute" in acks["env-mute"]["payload"]["text"]
    assert room.store.active_mutes(room.h.clock()) == []
