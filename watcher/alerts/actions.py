"""What a click on an alert's button does, wherever the click arrives from.

Slack delivers the same ``block_actions`` payload over HTTP (the web app's
interactivity endpoint) and over Socket Mode; both hand it here, so the two
paths cannot drift apart.

*Mute 1h* silences a vendor, so it follows the rule of ``/watcher mute``: only
``slack.admins`` or members of ``slack.admin_usergroup``
(:class:`~watcher.alerts.commands.Permissions`). The caller asks the
permission first (it may need a call to Slack: off the event loop) and passes
the decision in; a refused click changes nothing and the clicker is told why,
only them, through the payload's ``response_url``.
"""

from __future__ import annotations

import logging
from typing import Any

from watcher.i18n import Said

log = logging.getLogger("watcher.alerts.actions")

MUTE_SECONDS = 3600
NO_PERMISSIONS: tuple[bool, str] = (False, Said("slash.no_check"))


def clicker_id(payload: dict[str, Any]) -> str:
    """The Slack user id of whoever clicked ("" when the payload has none)."""
    user = payload.get("user") or {}
    value = user.get("id") if isinstance(user, dict) else None
    return value.strip() if isinstance(value, str) else ""


def wants_permission(payload: dict[str, Any]) -> bool:
    """Whether any action of the payload needs the admin check (a Mute click)."""
    actions = payload.get("actions") if isinstance(payload, dict) else None
    return any(isinstance(a, dict) and a.get("action_id") == "mute_1h" for a in actions or [])


def refusal_text(decision: tuple[bool, str], locale: str | None = None) -> str:
    """What the clicker reads when the admin check says no, in the team's language (``alerts.locale``)."""
    from watcher import i18n

    return i18n.say(decision[1], locale).replace("{what}", i18n.t(locale, "slash.verb.mute"))


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


def handle_action(
    engine, action: dict[str, Any], who: str, *, may_mute: tuple[bool, str] | None = None
) -> str | None:
    """Apply one button click; returns a line for the log, or None for a button we do not own.

    ``may_mute`` is the admin check's decision for the clicker (``Permissions.check``); without
    one, a Mute click is refused.
    """
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
        if not (may_mute or NO_PERMISSIONS)[0]:
            return f"mute of {value} by {who} refused: not a watcher admin"
        engine.mute(value, MUTE_SECONDS, "muted for 1 h from Slack", who)
        return f"{value} muted for 1 h by {who}"
    return None


def handle_block_actions(
    engine, payload: dict[str, Any], *, may_mute: tuple[bool, str] | None = None
) -> list[str]:
    """Apply every action of a ``block_actions`` payload; other payload types are ignored."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return []
    who = clicker(payload)
    done = []
    for action in payload.get("actions") or []:
        if isinstance(action, dict):
            line = handle_action(engine, action, who, may_mute=may_mute)
            if line:
                log.info("Slack: %s", line)
                done.append(line)
    return done
