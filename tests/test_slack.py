"""Slack: the bot and the webhook against a real local Slack stand-in, and what the renderer emits.

The server (tests/slack_server.py) keeps channels and threads like Slack, enforces
Slack's block limits, and records every request, so "one message, edited in place,
replies in its thread" and "slack-sdk did not retry behind the outbox's back" are
assertions on what actually went over the wire.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from slack_server import SlackServer, _check_content

from watcher.alerts.model import Alert, AlertAction, Alternative, SlackRef, TransportError
from watcher.alerts.slack import SlackBot, SlackWebhook, slack_error
from watcher.alerts.slack_render import (
    escape_mrkdwn,
    markdown_to_mrkdwn,
    render_message,
    render_reply,
    safe_url,
)

CHANNEL = "C0ALERTS"


def make_alert(**kw: Any) -> Alert:
    base: dict[str, Any] = dict(
        incident_id=42,
        vendor="openai",
        vendor_name="OpenAI",
        title="Elevated errors on the API",
        kind="outage",
        reason='"errors" in the title',
        state="open",
        status="investigating",
        action=AlertAction.OPENED,
        impact="major",
        components=("API", "ChatGPT"),
        latest_update="We are investigating elevated error rates.",
        url="https://status.openai.com/incidents/01ABC",
        status_page="https://status.openai.com/",
        started_at="2026-10-07T13:00:00+00:00",
        playbook="## What to do\n- Switch drafts to **Claude**\n- Tell the [team](https://wiki.example.com/ai)",
        alternatives=(Alternative("anthropic", "Anthropic", "operational", latency_ms=820.0),),
    )
    base.update(kw)
    return Alert(**base)


def text_objects(node: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """Every Slack text object in a block tree: (path, type, text)."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield path, node["type"], node["text"]
        for k, v in node.items():
            yield from text_objects(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from text_objects(v, f"{path}[{i}]")


def buttons(blocks: list[dict]) -> dict[str, dict]:
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


@pytest.fixture
def bot(slack_server: SlackServer) -> SlackBot:
    return SlackBot(slack_server.token, base_url=slack_server.api_url, timeout=2)


# -- the bot: one message per incident, edited in place, updates in its thread ---------------


def test_post_creates_one_message_with_blocks_and_buttons_carrying_the_incident_id(slack_server, bot):
    ref = bot.post(CHANNEL, make_alert())

    assert ref == SlackRef(CHANNEL, ref.ts)
    [msg] = slack_server.messages(CHANNEL)
    assert msg.ts == ref.ts
    assert "OpenAI" in msg.text and "Elevated errors on the API" in msg.text  # the notification line
    assert msg.blocks[0]["type"] == "header"
    found = buttons(msg.blocks)
    assert found["ack"]["text"]["text"] == "Acknowledge"
    assert found["ack"]["value"] == "42"
    assert found["mute_1h"]["text"]["text"] == "Mute 1h"
    assert found["mute_1h"]["value"] == "openai"
    # previews of vendor links would bury the alert
    assert msg.args["unfurl_links"] is False and msg.args["unfurl_media"] is False
    [call] = slack_server.calls("chat.postMessage")
    assert call.headers["authorization"] == f"Bearer {slack_server.token}"
    assert call.headers["content-type"].startswith("application/json")


def test_update_edits_the_same_message_in_place(slack_server, bot):
    ref = bot.post(CHANNEL, make_alert())
    bot.update(ref, make_alert(action=AlertAction.ACKNOWLEDGED, acknowledged_by="maria"))

    [msg] = slack_server.messages(CHANNEL)
    assert msg.ts == ref.ts
    assert len(msg.edits) == 1
    assert "ack" in buttons(msg.edits[0]["blocks"])
    assert "ack" not in buttons(msg.blocks)  # acknowledged: the button is gone, mute stays
    assert "mute_1h" in buttons(msg.blocks)
    assert "maria" in json.dumps(msg.blocks)


def test_update_of_a_vanished_message_is_permanent(slack_server, bot):
    with pytest.raises(TransportError) as e:
        bot.update(SlackRef(CHANNEL, "1600000000.000001"), make_alert())
    assert e.value.permanent
    assert "message_not_found" in e.value.message


def test_reply_lands_in_the_thread_of_the_message(slack_server, bot):
    ref = bot.post(CHANNEL, make_alert())
    update = make_alert(
        action=AlertAction.UPDATED, status="identified", latest_update="Fix is being deployed."
    )
    r1 = bot.reply(ref, update)
    r2 = bot.reply(ref, make_alert(action=AlertAction.RESOLVED, state="resolved", duration="1h 12m"))

    [msg] = slack_server.messages(CHANNEL)  # still one top-level message
    assert [r.ts for r in msg.replies] == [r1.ts, r2.ts]
    assert all(r.thread_ts == ref.ts for r in msg.replies)
    assert "identified" in msg.replies[0].text and "Fix is being deployed." in msg.replies[0].text
    assert "Resolved after 1h 12m" in msg.replies[1].text
    assert r1.ts != ref.ts != r2.ts


def test_check_reports_the_bot_and_workspace_from_auth_test(slack_server, bot):
    assert bot.check() == "bot watcher in workspace Watcher Test"
    assert [r.method for r in slack_server.requests] == ["auth.test"]


def test_the_bot_repr_never_shows_the_token(slack_server, bot):
    assert slack_server.token not in repr(bot)
    hook = SlackWebhook(slack_server.webhook_url)
    assert "XXXX" not in repr(hook) and "services" not in repr(hook)


# -- failures: transient or permanent, in plain words, never retried by slack-sdk ------------


def test_rate_limit_429_is_transient_and_carries_retry_after(slack_server, bot):
    slack_server.fail_next(status=429, headers={"Retry-After": "3"})
    with pytest.raises(TransportError) as e:
        bot.post(CHANNEL, make_alert())
    assert e.value.permanent is False
    assert e.value.retry_after == 3
    assert "rate limit" in e.value.message
    assert slack_server.messages(CHANNEL) == []


def test_server_error_500_is_transient(slack_server, bot):
    slack_server.fail_next(status=500)  # an HTML error page, as Slack's front end sends
    with pytest.raises(TransportError) as e:
        bot.post(CHANNEL, make_alert())
    assert e.value.permanent is False
    assert e.value.retry_after is None
    assert "HTTP 500" in e.value.message
    assert "<" not in e.value.message  # none of the HTML page leaks into our message


@pytest.mark.parametrize("code", ["internal_error", "fatal_error", "service_unavailable"])
def test_slack_side_error_codes_are_transient(slack_server, bot, code):
    slack_server.fail_next(error=code)
    with pytest.raises(TransportError) as e:
        bot.post(CHANNEL, make_alert())
    assert not e.value.permanent
    assert code in e.value.message


def _no_secret_anywhere(err: TransportError, secret: str, caplog) -> None:
    assert secret not in err.message
    assert secret not in str(err) and secret not in repr(err)
    assert secret not in "".join(traceback.format_exception(err))
    assert secret not in caplog.text


def test_invalid_token_is_permanent_and_never_echoes_the_token(slack_server, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "xoxb-1111-2222-SECRETsecretSECRET"
    with pytest.raises(TransportError) as e:
        SlackBot(secret, base_url=slack_server.api_url, timeout=2).post(CHANNEL, make_alert())
    assert e.value.permanent
    assert "invalid_auth" in e.value.message
    assert "token" in e.value.message and "WATCHER_SLACK__TOKEN" in e.value.message  # says what to fix
    _no_secret_anywhere(e.value, secret, caplog)
    assert slack_server.messages(CHANNEL) == []


def test_unknown_channel_is_permanent_and_names_the_channel(slack_server, bot, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransportError) as e:
        bot.post("C0NOTHERE", make_alert())
    assert e.value.permanent
    assert "C0NOTHERE" in e.value.message and "channel_not_found" in e.value.message
    assert "invite the bot" in e.value.message
    _no_secret_anywhere(e.value, slack_server.token, caplog)


def test_channel_not_found_from_the_failure_knob_is_permanent_too(slack_server, bot):
    slack_server.fail_next(error="channel_not_found")
    with pytest.raises(TransportError) as e:
        bot.post(CHANNEL, make_alert())
    assert e.value.permanent
    assert slack_server.token not in e.value.message


@pytest.mark.parametrize("mode", ["refuse", "reset"])
def test_unreachable_slack_is_transient_cannot_reach(slack_server, bot, mode):
    slack_server.down(mode)
    with pytest.raises(TransportError) as e:
        bot.post(CHANNEL, make_alert())
    assert e.value.permanent is False
    assert e.value.message.startswith("cannot reach Slack")
    slack_server.up()
    ref = bot.post(CHANNEL, make_alert())  # back at the same URL
    assert [m.ts for m in slack_server.messages(CHANNEL)] == [ref.ts]


def test_a_slack_that_never_answers_is_a_transient_timeout(slack_server):
    slack_server.down("hang")
    with pytest.raises(TransportError) as e:
        SlackBot(slack_server.token, base_url=slack_server.api_url, timeout=0.5).post(CHANNEL, make_alert())
    assert not e.value.permanent
    assert "timeout" in e.value.message


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 429, "headers": {"Retry-After": "1"}},
        {"status": 500},
        {"status": 503},
        {"disconnect": True},
        {"error": "internal_error"},
    ],
    ids=["429", "500", "503", "disconnect", "internal_error"],
)
def test_slack_sdk_does_not_retry_on_its_own(slack_server, bot, failure):
    """The outbox owns retries and backoff: exactly one request per call, whatever the failure."""
    slack_server.fail_next(5, **failure)
    with pytest.raises(TransportError):
        bot.post(CHANNEL, make_alert())
    assert len(slack_server.calls("chat.postMessage")) == 1
    assert slack_server.pending_failures == 4


def test_slack_sdk_does_not_retry_a_connection_reset(slack_server, bot):
    slack_server.down("reset")
    with pytest.raises(TransportError):
        bot.post(CHANNEL, make_alert())
    assert len(slack_server.requests) == 1


# -- incoming webhook: the lesser mode -----------------------------------------------------------


def test_webhook_posts_the_message_without_the_actions_block(slack_server):
    SlackWebhook(slack_server.webhook_url, timeout=2).post(make_alert())

    [msg] = slack_server.messages(CHANNEL)
    assert msg.via == "webhook"
    assert "OpenAI" in msg.text
    assert msg.blocks and all(b["type"] != "actions" for b in msg.blocks)  # clicks would go nowhere
    assert any(b["type"] == "header" for b in msg.blocks)
    [call] = slack_server.calls("webhook")
    assert "authorization" not in call.headers  # the URL is the credential


def test_removed_webhook_is_permanent(slack_server):
    hook = SlackWebhook(slack_server.url + "/services/T0TEST/B0TEST/REVOKED", timeout=2)
    with pytest.raises(TransportError) as e:
        hook.post(make_alert())
    assert e.value.permanent
    assert "no_service" in e.value.message
    assert "REVOKED" not in e.value.message  # the URL is a secret


def test_webhook_rate_limit_and_outage_are_transient(slack_server):
    hook = SlackWebhook(slack_server.webhook_url, timeout=2)
    slack_server.fail_next(status=429, headers={"Retry-After": "3"})
    with pytest.raises(TransportError) as e:
        hook.post(make_alert())
    assert not e.value.permanent and e.value.retry_after == 3
    slack_server.fail_next(status=500)
    with pytest.raises(TransportError) as e:
        hook.post(make_alert())
    assert not e.value.permanent
    slack_server.fail_next(disconnect=True)
    with pytest.raises(TransportError) as e:
        hook.post(make_alert())
    assert not e.value.permanent and e.value.message.startswith("cannot reach Slack")
    assert len(slack_server.calls("webhook")) == 3  # no hidden retries here either
    slack_server.down()
    with pytest.raises(TransportError) as e:
        hook.post(make_alert())
    assert not e.value.permanent and e.value.message.startswith("cannot reach Slack")
    assert slack_server.messages(CHANNEL) == []


# -- the error table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "webhook", "permanent"),
    [
        (200, "invalid_auth", False, True),
        (200, "token_revoked", False, True),
        (200, "not_in_channel", False, True),
        (200, "msg_blocks_too_long", False, True),
        (200, "internal_error", False, False),
        (200, "a_code_slack_invents_next_year", False, False),
        (502, None, False, False),
        (404, None, True, True),  # webhook removed
        (410, "channel_is_archived", True, True),
        (400, "invalid_payload", True, True),
        (500, "rollup_error", True, False),
    ],
)
def test_slack_error_decides_permanent_or_transient(status, code, webhook, permanent):
    err = slack_error(status, code, channel="C1", webhook=webhook)
    assert err.permanent is permanent
    assert err.message and "None" not in err.message


def test_slack_error_does_not_echo_junk_codes():
    err = slack_error(500, "<html><script>alert(1)</script>", None)
    assert "<" not in err.message and not err.permanent


# -- rendering: vendor text can neither ping nor disguise a link ---------------------------------

EVIL = "<!channel> <!here> <!everyone> <@U123ABC> <#C0FFEE> <http://evil.example|click here> @channel @here &lt; a & b >"
LINK = re.compile(r"<(https?://[^|<>\s]+)\|[^<>]*>")
BROADCAST = re.compile(r"(?<!\w)@(channel|here|everyone)\b", re.IGNORECASE)


def evil_alert(action: AlertAction = AlertAction.UPDATED, **kw: Any) -> Alert:
    fields: dict[str, Any] = dict(
        vendor_name="Open " + EVIL,
        title="Title " + EVIL,
        latest_update="Update " + EVIL,
        event_text="Event " + EVIL,
        components=("API " + EVIL, "<@U999ZZZ>", "<!subteam^S123>"),
        status="investigating " + EVIL,
        impact=EVIL,
        reason="because " + EVIL,
        acknowledged_by="<!channel>",
        ack_reason=EVIL,
        url="https://status.openai.com/incidents/1?a=1&b=<2>|x",
        status_page="javascript:alert(document.cookie)",
        incident_url="https://watcher.example.com/incidents/42",
        playbook="## Steps\n- Do X\n- `<!here>` in code\n- [not a link](javascript:alert(1))",
        alternatives=(Alternative("anthropic", "Anthropic " + EVIL, "operational"),),
        action=action,
    )
    fields.update(kw)
    return make_alert(**fields)


def assert_safe(text: str, allowed_urls: set[str], where: str) -> None:
    for bad in ("<!", "<@", "<#"):
        assert bad not in text, f"{where}: {bad!r} in {text!r}"
    stripped = LINK.sub("", text)
    assert "<" not in stripped and ">" not in stripped, f"{where}: stray angle bracket in {text!r}"
    for m in LINK.finditer(text):
        assert m.group(1) in allowed_urls, f"{where}: link to {m.group(1)!r} we did not make"
    assert not BROADCAST.search(text), f"{where}: a bare broadcast mention in {text!r}"


@pytest.mark.parametrize("action", list(AlertAction))
def test_vendor_text_cannot_ping_or_disguise_links(action):
    alert = evil_alert(action)
    text, blocks = render_message(alert)
    allowed = {safe_url(alert.url), safe_url(alert.incident_url)}

    found = list(text_objects(blocks))
    assert len(found) > 10
    for path, _kind, t in found:
        assert_safe(t, allowed, path)
    assert_safe(text, set(), "fallback text")
    assert_safe(render_reply(alert), set(), "thread reply")

    everything = json.dumps(blocks)
    assert "javascript" not in "".join(LINK.findall(everything))  # shown at most, never linked
    links = [m.group(1) for _, _, t in found for m in LINK.finditer(t)]
    assert safe_url(alert.url) in links  # our own link to the vendor incident is still there
    assert "&amp;lt;" in everything  # a literal "&lt;" from the vendor shows as typed


def test_a_plain_text_header_cannot_carry_angle_brackets_or_broadcasts():
    _, blocks = render_message(evil_alert(AlertAction.OPENED))
    header = blocks[0]["text"]["text"]
    assert "<" not in header and ">" not in header
    assert not BROADCAST.search(header)


def test_the_acknowledger_user_id_becomes_a_mention_and_nothing_else_does():
    alert = evil_alert(AlertAction.ACKNOWLEDGED, acknowledged_by="U0123ABCD")
    _, blocks = render_message(alert)
    mentions = re.findall(r"<@([A-Z0-9]+)>", json.dumps(blocks))
    assert mentions and set(mentions) == {"U0123ABCD"}
    assert render_reply(alert).startswith("👀 Acknowledged by <@U0123ABCD>")


def test_escape_mrkdwn_examples():
    assert escape_mrkdwn("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"
    assert escape_mrkdwn("&lt;") == "&amp;lt;"
    assert escape_mrkdwn("ping @channel now") == "ping @\u2060channel now"
    assert escape_mrkdwn("mail me: ops@channel.example") == "mail me: ops@channel.example"


def test_markdown_to_mrkdwn_converts_our_playbook_and_links_only_http():
    md = (
        "# Claude is down\n"
        "Use **Gemini** for *drafts*.\n"
        "- see [runbook](https://wiki.example.com/r?a=1&b=2)\n"
        "  - nested <!here>\n"
        "1. [bad](javascript:alert(1))\n"
        "`<@U1>`"
    )
    out = markdown_to_mrkdwn(md)
    assert out.splitlines() == [
        "*Claude is down*",
        "Use *Gemini* for _drafts_.",
        "• see <https://wiki.example.com/r?a=1&amp;b=2|runbook>",
        "    ◦ nested &lt;!here&gt;",
        "1. bad (javascript:alert(1))",
        "`&lt;@U1&gt;`",
    ]


def test_safe_url_accepts_only_http_and_cannot_break_out_of_a_link():
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("data:text/html,x") is None
    assert safe_url("ftp://example.com/") is None
    assert safe_url("https://a.example/x|y>z<w") == "https://a.example/x%7Cy%3Ez%3Cw"
    assert safe_url("https://a.example/?q=1&r=2") == "https://a.example/?q=1&amp;r=2"


# -- sizes: a vendor's essay still makes a message Slack accepts ---------------------------------


def assert_within_limits(text: str, blocks: list[dict]) -> None:
    assert len(blocks) <= 50
    assert len(text) <= 1000
    for b in blocks:
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= 150
        if b["type"] == "section":
            assert 0 < len(b["text"]["text"]) <= 3000
            assert len(b.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in b.get("fields", []))
        if b["type"] == "context":
            assert all(len(e["text"]) <= 2000 for e in b["elements"])
    assert _check_content({"text": text, "blocks": blocks}) is None  # the server's own Slack rules


def test_a_20000_character_update_and_200_components_fit_slack_limits(slack_server, bot):
    alert = make_alert(
        title="T" * 2000,
        vendor_name="V" * 500,
        latest_update="&<>" * 7000,  # escaping makes it ~5× longer
        components=tuple(f"Component {i} with a long name & more" for i in range(200)),
        reason="r" * 5000,
    )
    text, blocks = render_message(alert)
    assert_within_limits(text, blocks)
    update = next(b for b in blocks if b["type"] == "section" and "Latest update" in b["text"]["text"])
    assert update["text"]["text"].endswith("…")
    assert not re.search(r"&[a-z]*…$", update["text"]["text"])  # not cut inside an entity
    bot.post(CHANNEL, alert)  # and Slack (our stand-in, with Slack's limits) takes it
    assert len(slack_server.messages(CHANNEL)) == 1


def test_emoji_heavy_text_is_measured_as_slack_counts_it():
    text, blocks = render_message(make_alert(latest_update="🔥" * 20000, title="🔥" * 3000))
    assert_within_limits(text, blocks)
    for _, _, t in text_objects(blocks):
        assert len(t.encode("utf-16-le")) // 2 <= 3000


def test_a_huge_playbook_is_cut_to_50_blocks_with_a_note():
    playbook = "\n\n".join(f"## Step {i}\n" + "word " * 700 for i in range(200))
    text, blocks = render_message(make_alert(playbook=playbook))
    assert_within_limits(text, blocks)
    assert len(blocks) == 50
    assert "playbook cut" in json.dumps(blocks)
    assert blocks[-1]["type"] == "actions"  # the buttons survive the cut


def test_an_overlong_link_is_dropped_rather_than_half_sent():
    url = "https://status.example.com/" + "a" * 1990
    _, blocks = render_message(make_alert(url=url, status_page=None))
    for _, _, t in text_objects(blocks):
        assert t.count("<") == t.count(">"), t[:80]


# -- what each state shows ---------------------------------------------------------------------


def test_resolved_alert_shows_resolved_with_its_duration_and_no_buttons():
    alert = make_alert(action=AlertAction.RESOLVED, state="resolved", status="resolved", duration="1h 12m")
    text, blocks = render_message(alert)
    assert text.startswith("✅ Resolved:") and "(after 1h 12m)" in text
    assert blocks[0]["text"]["text"].startswith("✅")
    assert "Resolved after 1h 12m" in json.dumps(blocks, ensure_ascii=False)
    assert not any(b["type"] == "actions" for b in blocks)
    assert render_reply(alert).startswith("✅ Resolved after 1h 12m")


def test_acknowledged_alert_shows_who_and_keeps_only_the_mute_button():
    alert = make_alert(action=AlertAction.ACKNOWLEDGED, acknowledged_by="maria", ack_reason="on it")
    text, blocks = render_message(alert)
    everything = json.dumps(blocks, ensure_ascii=False)
    assert "Acknowledged by maria" in everything
    assert "on it" in everything
    assert "(acknowledged by maria)" in text
    assert set(buttons(blocks)) == {"mute_1h"}


def test_open_alert_says_nobody_acknowledged_yet():
    _, blocks = render_message(make_alert())
    assert "Open, not acknowledged" in json.dumps(blocks)


def test_test_alert_is_marked_as_a_test():
    text, blocks = render_message(make_alert(action=AlertAction.TEST))
    assert "TEST" in text and "TEST" in blocks[0]["text"]["text"]


# -- the stand-in itself: what the outbox tests will lean on ----------------------------------


def test_server_parses_form_encoded_calls_and_checks_the_token(slack_server):
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(token=slack_server.token, base_url=slack_server.api_url, retry_handlers=[])
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    resp = client.api_call(
        "chat.postMessage", params={"channel": CHANNEL, "text": "hi", "blocks": json.dumps(blocks)}
    )
    assert resp["ok"]
    [call] = slack_server.calls("chat.postMessage")
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert slack_server.messages(CHANNEL)[0].blocks == blocks

    with pytest.raises(SlackApiError) as e:
        WebClient(token=None, base_url=slack_server.api_url, retry_handlers=[]).auth_test()
    assert e.value.response["error"] == "not_authed" and e.value.response.status_code == 200


def test_server_rejects_blocks_over_slack_limits(slack_server, bot):
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(token=slack_server.token, base_url=slack_server.api_url, retry_handlers=[])
    too_many = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError) as e:
        client.chat_postMessage(channel=CHANNEL, text="x", blocks=too_many)
    assert e.value.response["error"] == "invalid_blocks"
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel=CHANNEL, text="x", blocks=long_section)
    assert slack_server.messages(CHANNEL) == []


def test_server_timestamps_are_unique_and_increasing(slack_server, bot):
    refs = [bot.post(CHANNEL, make_alert(incident_id=i)) for i in range(5)]
    ts = [r.ts for r in refs]
    assert ts == sorted(ts, key=float) and len(set(ts)) == 5
    assert all(re.fullmatch(r"\d{10}\.\d{6}", t) for t in ts)


def test_failures_can_target_one_method(slack_server, bot):
    slack_server.fail_next(error="internal_error", method="chat.update")
    ref = bot.post(CHANNEL, make_alert())  # not affected
    with pytest.raises(TransportError):
        bot.update(ref, make_alert())
    bot.update(ref, make_alert())
    assert len(slack_server.message(CHANNEL, ref.ts).edits) == 1
