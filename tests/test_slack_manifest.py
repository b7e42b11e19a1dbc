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
