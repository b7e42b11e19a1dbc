"""The Slack app manifests in slack/ create an app that can do what watcher asks of Slack."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SLACK = Path(__file__).parent.parent / "slack"


@pytest.mark.parametrize("name", ["manifest.yaml", "manifest-socket-mode.yaml"])
def test_the_manifest_grants_posting_and_turns_on_buttons(name):
    m = yaml.safe_load((SLACK / name).read_text())
    scopes = m["oauth_config"]["scopes"]["bot"]
    assert {"chat:write", "chat:write.public"} <= set(scopes)
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["features"]["bot_user"]["display_name"]


@pytest.mark.parametrize("name", ["manifest.yaml", "manifest-socket-mode.yaml"])
def test_the_manifest_declares_the_watcher_slash_command_and_its_scopes(name):
    m = yaml.safe_load((SLACK / name).read_text())
    [cmd] = m["features"]["slash_commands"]
    assert cmd["command"] == "/watcher"
    assert cmd["description"] and len(cmd["description"]) <= 2000
    assert "subscribe" in cmd["usage_hint"]
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    assert {"commands", "usergroups:read"} <= scopes  # the command itself; who is in slack.admin_usergroup


def test_http_mode_points_the_slash_command_at_the_web_apps_commands_route():
    m = yaml.safe_load((SLACK / "manifest.yaml").read_text())
    [cmd] = m["features"]["slash_commands"]
    assert cmd["url"].endswith("/slack/commands")
    assert (
        cmd["url"].rsplit("/slack/", 1)[0]
        == m["settings"]["interactivity"]["request_url"].rsplit("/slack/", 1)[0]
    )
    from watcher.web.app import create_app

    paths = {r.path for r in create_app(None, signing_secret=None, ack_secret=None).routes}
    assert "/slack/commands" in paths


def test_socket_mode_slash_command_needs_no_url():
    m = yaml.safe_load((SLACK / "manifest-socket-mode.yaml").read_text())
    [cmd] = m["features"]["slash_commands"]
    assert "url" not in cmd


def test_http_mode_points_buttons_at_the_web_apps_interactivity_route():
    m = yaml.safe_load((SLACK / "manifest.yaml").read_text())
    assert m["settings"]["socket_mode_enabled"] is False
    assert m["settings"]["interactivity"]["request_url"].endswith("/slack/interactivity")
    from watcher.web.app import create_app

    paths = {r.path for r in create_app(None, signing_secret=None, ack_secret=None).routes}
    assert "/slack/interactivity" in paths


def test_socket_mode_needs_no_request_url():
    m = yaml.safe_load((SLACK / "manifest-socket-mode.yaml").read_text())
    assert m["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in m["settings"]["interactivity"]
