"""Commands that act on alerts: ack, mute, unmute, outbox, test-alert.

The terminal's way to do what the Slack buttons, the board and the JSON API also do, through the same
alert engine, so an acknowledgement or a mute means the same wherever it comes from.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from watcher.cli.common import (
    EXIT_CONFIG,
    EXIT_FAIL,
    EXIT_OK,
    age_words,
    alert_engine,
    open_store_or_exit,
    print_table,
)


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1d', '1h30m' → seconds (the same parser as ``/watcher mute`` in Slack)."""
    from watcher.alerts.commands import parse_duration as parse

    return parse(text)


def cmd_ack(settings, args) -> int:
    import getpass

    from watcher.alerts.engine import plain_name

    store = open_store_or_exit(settings, create=False)
    try:
        try:
            by = plain_name(args.by) if args.by else getpass.getuser()
        except ValueError as e:
            print(f"watcher: --by: {e}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            inc = alert_engine(settings, store).acknowledge(args.incident, by, args.reason, via="cli")
        except (LookupError, ValueError) as e:
            print(f"watcher: {e}", file=sys.stderr)
            return EXIT_FAIL
    finally:
        store.close()
    print(
        f"incident #{inc.id} ({inc.vendor}: {inc.title}) acknowledged by {by}; reminders and escalation stop"
    )
    return EXIT_OK


def cmd_mute(settings, args) -> int:
    import getpass

    try:
        seconds = parse_duration(args.duration)
    except ValueError as e:
        print(f"watcher: {e}", file=sys.stderr)
        return EXIT_CONFIG
    store = open_store_or_exit(settings)
    try:
        engine = alert_engine(settings, store)
        if args.vendor not in engine.vendors:
            print(
                f"watcher: unknown vendor {args.vendor!r}; watched: {', '.join(engine.vendors)}",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        until = engine.mute(args.vendor, seconds, args.reason, args.by or getpass.getuser())
    finally:
        store.close()
    print(f"{args.vendor} muted until {until:%Y-%m-%d %H:%M} UTC; it is still watched, alerts resume after")
    return EXIT_OK


def cmd_unmute(settings, args) -> int:
    import getpass

    store = open_store_or_exit(settings, create=False)
    try:
        n = store.end_mutes(args.vendor, datetime.now(UTC), getpass.getuser())
    finally:
        store.close()
    print(f"{args.vendor}: {'mute ended' if n else 'was not muted'}")
    return EXIT_OK


def _about(n) -> str:
    """The INCIDENT cell of ``watcher outbox``: ``#12``, or what a row about no incident is.

    The weekly report is queued with incident id 0 (it belongs to no incident); ``#0`` read as a
    missing or broken incident, so it is named instead."""
    from watcher.alerts.model import AlertAction

    if n.action is AlertAction.REPORT:
        return "weekly report"
    return f"#{n.incident_id}"


def _shown(channel: str, target: str) -> str:
    """A row's target as it may be printed: its channel says (an Apprise URL carries tokens: its scheme
    only); a row of a channel no longer registered, as it is."""
    from watcher.alerts.channels import registry

    ch = registry.get(channel)
    return ch.shown(target) if ch is not None else target


def cmd_outbox(settings, args) -> int:
    from watcher.alerts.deliver import wait_reasons

    store = open_store_or_exit(settings)
    try:
        rows = store.notifications(state=args.state, limit=args.limit)
        waiting = store.notifications(state="pending", limit=100_000) + store.notifications(
            state="sending", limit=100_000
        )
    finally:
        store.close()
    now = datetime.now(UTC)
    why = wait_reasons(waiting, now, settings)
    if args.json:  # one document, also when empty
        print(
            json.dumps(
                {
                    "notifications": [
                        {
                            "id": n.id,
                            "incident_id": n.incident_id,
                            "action": n.action.value,
                            "channel": n.channel,
                            "target": n.target,
                            "route": n.route,
                            "state": n.state,
                            "attempts": n.attempts,
                            "created_at": n.created_at.isoformat(),
                            "not_before": n.not_before.isoformat(),
                            "delivered_at": n.delivered_at.isoformat() if n.delivered_at else None,
                            "last_error": n.last_error,
                            "fallback_of": n.fallback_of,
                            "why": why.get(n.id),
                        }
                        for n in rows
                    ]
                },
                indent=2,
            )
        )
        return EXIT_OK
    if not rows:
        print("outbox is empty" + (f" ({args.state})" if args.state else ""))
        return EXIT_OK
    print_table(
        ["ID", "INCIDENT", "ACTION", "TO", "STATE", "TRIES", "WHEN", "WHY / ERROR"],
        [
            [
                f"#{n.id}",
                _about(n),
                n.action.value,
                f"{n.channel}:{_shown(n.channel, n.target)}",
                n.state + (" (held)" if n.held and n.state == "pending" else ""),
                str(n.attempts),
                age_words(now, n.delivered_at or n.not_before),
                why.get(n.id) or n.last_error or "",
            ]
            for n in rows
        ],
    )
    return EXIT_OK


def cmd_test_alert(settings, args) -> int:
    from watcher.alerts.channels import registry
    from watcher.alerts.routing import route_targets
    from watcher.alerts.testing import send_test_alerts

    routes = [r for r in settings.routes if args.route in (None, r.name)]
    if not routes:
        print(
            "watcher: no route to test"
            + (
                f" named {args.route!r}"
                if args.route
                else ": add a [[routes]] table with slack_channels or emails"
            ),
            file=sys.stderr,
        )
        return EXIT_CONFIG
    # the targets of every registered channel, as the alert engine routes them: a route that names
    # only a channel added later (targets.pager) has a target too
    if not any(route_targets(r) for r in routes):
        names = ", ".join(repr(r.name) for r in routes)
        print(
            f"watcher: no target to test: route(s) {names} have no {registry.route_keys()} target, "
            "so no alert reaches anyone. Add one (or run `watcher init`), then `watcher doctor`",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    # the other watched vendors as they are now, from the daemon's database when there is one
    store = None
    if settings.storage.url or settings.storage.path.exists():
        try:
            store = open_store_or_exit(settings, create=False)
        except SystemExit:
            store = None
    try:
        results = send_test_alerts(settings, routes, store)
    finally:
        if store is not None:
            store.close()
    ok = True
    for target, error in results:
        print(f"{target:<40} {'ok' if error is None else 'FAILED: ' + error}")
        ok = ok and error is None
    return EXIT_OK if ok else EXIT_FAIL
