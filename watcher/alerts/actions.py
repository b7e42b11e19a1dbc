"""What a click on an alert's button does, wherever the click arrives from.

Slack delivers the same ``block_actions`` payload over HTTP (the web app's
interactivity endpoint) and over Socket Mode; both hand it here, so the two
paths cannot drift apart.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("watcher.alerts.actions")

MUTE_SECONDS = 3600


def clicker(payload: dict[str, Any]) -> str:
    """The name to record for whoever clicked: Slack's username, else the user id."""
    user = payload.get("user") or {}
    if not isinstance(user, dict):
        return "someone in Slack"
    for key in ("username", "name", "id"):
        value = user.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:80]
    return "someone in Slack"


def handle_action(engine, action: dict[str, Any], who: str) -> str | None:
    """Apply one button click; returns a line for the log, or None for a button we do not own."""
    action_id = action.get("action_id")
    value = str(action.get("value") or "")
    if action_id == "ack":
        try:
            inc = engine.acknowledge(int(value), who, None, via="slack")
        except (LookupError, ValueError) as e:
            return f"ack by {who} not applied: {e}"
        return f"incident #{inc.id} acknowledged by {who}"
    if action_id == "mute_1h":
        if value not in engine.vendors:
            return f"mute by {who} refused: unknown vendor {value!r}"
        engine.mute(value, MUTE_SECONDS, "muted for 1 h from Slack", who)
        return f"{value} muted for 1 h by {who}"
    return None


def handle_block_actions(engine, payload: dict[str, Any]) -> list[str]:
    """Apply every action of a ``block_actions`` payload; other payload types are ignored."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return []
    who = clicker(payload)
    done = []
    for action in payload.get("actions") or []:
        if isinstance(action, dict):
            line = handle_action(engine, action, who)
            if line:
                log.info("Slack: %s", line)
                done.append(line)
    return done
