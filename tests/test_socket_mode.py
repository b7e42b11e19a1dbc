"""Slack Socket Mode: a button click arriving over a real WebSocket acknowledges the incident.

Stand-ins on 127.0.0.1: an HTTP server answering ``apps.connections.open`` with
a ws:// URL (slack-sdk's built-in client uses plain sockets off port 443), and a
`websockets` server that plays Slack: hello, then one interactive envelope, and
records the client's acknowledgement of that envelope.
"""

from __future__ import annotations

import pytest
from alerting import AlertHarness
from socket_slack import SlackSocket, run_bridge

from watcher.alerts.socket_mode import SocketModeBridge

APP_TOKEN = "xapp-1-test"


@pytest.fixture
def harness(vendor_server, tmp_path, backend):
    """The alert harness on each store (SQLite, PostgreSQL): clicks write acknowledgements and mutes."""
    h = AlertHarness(vendor_server, tmp_path, backend=backend)
    yield h
    h.close()


def test_a_click_over_socket_mode_acknowledges_and_is_acked_to_slack(harness):
    harness.outage()
    harness.poll()
    [inc] = harness.store.open_incidents("anthropic")
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": "ana"},
        "actions": [{"action_id": "ack", "value": str(inc.id), "type": "button"}],
    }
    slack = SlackSocket(
        [
            {
                "envelope_id": "env-1",
                "type": "interactive",
                "accepts_response_payload": False,
                "payload": payload,
            }
        ]
    )

    try:
        bridge = run_bridge(
            lambda loop: SocketModeBridge(harness.engine, loop, APP_TOKEN, base_url=slack.api_url),
            lambda: harness.store.ack(inc.id) is not None and slack.acks,
        )
    finally:
        slack.close()
    handled = bridge.handled
    ack = harness.store.ack(inc.id)
    assert ack is not None and (ack.by, ack.via) == ("ana", "slack")
    assert [a["envelope_id"] for a in slack.acks] == ["env-1"], "every envelope is acknowledged to Slack"
    assert handled == 1
    assert slack.auth and slack.auth[0] == f"Bearer {APP_TOKEN}"


def test_an_unknown_vendor_in_a_mute_click_is_refused(harness):
    from watcher.alerts.actions import handle_block_actions

    lines = handle_block_actions(
        harness.engine,
        {
            "type": "block_actions",
            "user": {"id": "U1"},
            "actions": [{"action_id": "mute_1h", "value": "<!channel>"}],
        },
    )
    assert lines and "refused" in lines[0]
    assert harness.store.active_mutes(harness.clock()) == []


def test_a_mute_click_without_an_admin_decision_is_refused(harness):
    """Mute 1h needs the admin check of /watcher mute; a click that was not allowed mutes nothing."""
    from watcher.alerts.actions import handle_block_actions

    click = {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "mute_1h", "value": "openai"}]}
    for decision in (None, (False, "Only watcher admins may {what}")):
        [line] = handle_block_actions(harness.engine, click, may_mute=decision)
        assert "refused: not a watcher admin" in line
    assert harness.store.active_mutes(harness.clock()) == []
    [line] = handle_block_actions(harness.engine, click, may_mute=(True, ""))
    assert [m.vendor for m in harness.store.active_mutes(harness.clock())] == ["openai"]
