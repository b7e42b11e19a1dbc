"""The ``watcher`` command: parse arguments, call the app, print. Nothing else lives here.

Imports are deferred into each command so that ``watcher --help`` starts fast.
Exit codes: 0 success, 1 a runtime failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _incident_id(text: str) -> int:
    """An incident number as the database can hold it: a clear usage error, never an overflow traceback."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an incident number (e.g. 12)") from None
    if not 1 <= n < 2**63:
        raise argparse.ArgumentTypeError(f"{text} is not an incident number: `watcher incidents` lists them")
    return n


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port number: choose one from 1 to 65535")
    return n


def build_parser() -> argparse.ArgumentParser:
    from watcher import __version__

    # Global options are accepted before or after the command. The subcommands' copy has no default
    # (SUPPRESS), so `watcher -c x.toml run` keeps the value given before the command instead of
    # silently resetting it to None.
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("--config", "-c", metavar="PATH", help="TOML config file (default: $WATCHER_CONFIG)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="TOML config file (default: $WATCHER_CONFIG)",
    )

    p = argparse.ArgumentParser(
        prog="watcher",
        description="Watch the AI vendors your team depends on; open, classify and resolve their incidents. "
        "New here? Start with `watcher init`, then `watcher doctor`.",
        parents=[top],
    )
    p.add_argument("--version", action="version", version=f"watcher {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", parents=[common], help="run the daemon: poll every source on its schedule")
    r.add_argument(
        "--log-format", choices=["human", "json"], default=None, help="log lines as text or JSON (log.format)"
    )

    c = sub.add_parser("check", parents=[common], help="poll every source once and print each vendor's state")
    c.add_argument("--once", action="store_true", help="poll once and exit (the only mode; kept for clarity)")
    c.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("status", parents=[common], help="each vendor's state, from the database")
    s.add_argument("--json", action="store_true")

    i = sub.add_parser("incidents", parents=[common], help="list incidents, newest first")
    i.add_argument("--open", action="store_true", help="only open incidents")
    i.add_argument("--vendor", metavar="V", help="only this vendor id")
    i.add_argument("--limit", type=int, default=50)
    i.add_argument("--all", action="store_true", help="include history backfilled from feeds")
    i.add_argument("--json", action="store_true")

    h = sub.add_parser(
        "health",
        parents=[common],
        help="exit 0 if the daemon polled recently and alerts get through, 1 if not",
    )
    h.add_argument(
        "--max-age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="oldest acceptable last poll (default: 3 poll intervals, at least 5 minutes)",
    )

    sh = sub.add_parser("show", parents=[common], help="one incident with its timeline")
    sh.add_argument("incident", type=_incident_id, metavar="ID")
    sh.add_argument("--json", action="store_true")

    a = sub.add_parser(
        "ack", parents=[common], help="acknowledge an incident: stops reminders and escalation"
    )
    a.add_argument("incident", type=_incident_id, metavar="INCIDENT")
    a.add_argument("--by", default=None, help="who acknowledges (default: $USER)")
    a.add_argument("--reason", default=None)

    m = sub.add_parser(
        "mute", parents=[common], help="mute a vendor's alerts for a while (monitoring goes on)"
    )
    m.add_argument("vendor")
    m.add_argument(
        "--for", dest="duration", required=True, metavar="DURATION", help="e.g. 30m, 2h, 1d, 1h30m"
    )
    m.add_argument("--reason", default=None)
    m.add_argument("--by", default=None)

    um = sub.add_parser("unmute", parents=[common], help="end a vendor's mute now")
    um.add_argument("vendor")

    ob = sub.add_parser("outbox", parents=[common], help="pending, failed and delivered notifications")
    ob.add_argument("--state", choices=["pending", "sending", "delivered", "dead"], default=None)
    ob.add_argument("--limit", type=int, default=30)
    ob.add_argument("--json", action="store_true")

    ta = sub.add_parser(
        "test-alert", parents=[common], help="send a realistic sample alert through the real channels"
    )
    ta.add_argument("--route", default=None, help="only this route (default: every route)")
    ta.epilog = "Exit 0 when every target accepted the sample; 1 when one failed; 2 when there is no target."

    pr = sub.add_parser(
        "probe", parents=[common], help="run a vendor's API probes and canaries once and print the results"
    )
    pr.add_argument("vendor", nargs="?", default=None, help="vendor id (default: every probed vendor)")
    pr.add_argument("--json", action="store_true")

    bl = sub.add_parser("baseline", parents=[common], help="learned baselines and detector states per vendor")
    bl.add_argument("--json", action="store_true")

    cfg = sub.add_parser("config", parents=[common], help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    cc = cfg_sub.add_parser(
        "check", parents=[common], help="validate the config and print what will be watched"
    )
    cc.add_argument("--json", action="store_true")

    dr = sub.add_parser(
        "doctor",
        parents=[common],
        help="check the whole setup for real: routes, Slack and SMTP credentials, database, web port, network",
        description="One line per check with its fix; exit 1 when a check fails. Nothing is posted or sent.",
    )
    dr.add_argument("--json", action="store_true")

    ini = sub.add_parser(
        "init",
        parents=[common],
        help="set watcher up: asks which tools the team uses and where alerts go, writes watcher.toml",
        description="Interactive on a terminal; with --yes (or no terminal) it takes everything from flags. "
        "Secrets come from the prompt, or from WATCHER_SLACK__TOKEN / WATCHER_EMAIL__PASSWORD, and are "
        "written to files beside the config (mode 600), never into it.",
    )
    ini.add_argument("--yes", "-y", action="store_true", help="do not ask: use the flags (for scripts)")
    ini.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="PATH",
        help="where to write (default: --config or ./watcher.toml)",
    )
    ini.add_argument("--force", action="store_true", help="replace an existing file")
    ini.add_argument(
        "--vendors", default="", metavar="IDS", help="comma-separated catalog ids (default: all)"
    )
    ini.add_argument(
        "--used-for",
        action="append",
        default=[],
        metavar="ID=WHAT",
        help="e.g. openai='blog drafts; ad copy'",
    )
    ini.add_argument("--slack-channel", action="append", default=[], metavar="C...", help="Slack channel ID")
    ini.add_argument("--email", action="append", default=[], metavar="ADDRESS", help="alert recipient")
    ini.add_argument("--smtp-host", default=None)
    ini.add_argument("--smtp-port", type=_port, default=587)
    ini.add_argument("--smtp-user", default=None)
    ini.add_argument("--sender", default=None, help="From: address of alert emails")
    ini.add_argument("--timezone", default="UTC", help="time zone of alerts, e.g. Europe/Paris")
    ini.add_argument("--locale", default="en", choices=["en", "fr"], help="language of alerts")
    ini.add_argument("--test-alert", action="store_true", help="send a test alert once written")
    ini.add_argument("--no-doctor", action="store_true", help="do not run the doctor afterwards")

    cl = sub.add_parser(
        "cluster",
        parents=[common],
        help="the instances on a shared PostgreSQL: locations, leader, heartbeats",
    )
    cl.add_argument("--json", action="store_true")

    dm = sub.add_parser(
        "demo", help="replay a real incident against a simulated vendor: no accounts, no internet"
    )
    dm.add_argument(
        "--speed", type=float, default=1.0, help="replay this many times faster (1: about a minute)"
    )
    dm.add_argument("--no-web", action="store_true", help="do not start the local web app")
    dm.add_argument("--port", type=_port, default=8765, help="web port on 127.0.0.1 (a free one if taken)")
    dm.add_argument("--stay", action="store_true", help="keep the web app up after the replay, until Ctrl-C")

    cf = sub.add_parser(
        "classify",
        parents=[common],
        help="classify incidents: JSON lines on stdin (title, body, impact, ...) → kind, reason",
    )
    cf.add_argument(
        "--explain",
        action="store_true",
        help="also print each kind's probability and the features that weighed most",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every error reaches the user as one line with its fix, never as a traceback
    (set WATCHER_DEBUG=1 to see the traceback of an unexpected one)."""
    import os

    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C anywhere, e.g. in `watcher classify` waiting on stdin
        print("watcher: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `watcher status | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as e:
        if os.environ.get("WATCHER_DEBUG"):
            raise
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(
            f"watcher: unexpected error: {what} ({type(e).__name__}). Run `watcher doctor` to check the setup; "
            "WATCHER_DEBUG=1 shows the traceback to report it.",
            file=sys.stderr,
        )
        return EXIT_FAIL


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.command == "classify":
        return cmd_classify(explain=args.explain)
    if args.command == "demo":
        return cmd_demo(args)
    from watcher.config import ConfigError

    try:
        if args.command == "init":
            return cmd_init(args)
        settings = _settings(args)
        if args.command == "config":
            if args.config_command != "check":
                parser.parse_args(["config", "--help"])
            return cmd_config_check(settings, args)
        handler = {
            "run": cmd_run,
            "check": cmd_check,
            "status": cmd_status,
            "incidents": cmd_incidents,
            "show": cmd_show,
            "health": cmd_health,
            "ack": cmd_ack,
            "mute": cmd_mute,
            "unmute": cmd_unmute,
            "outbox": cmd_outbox,
            "test-alert": cmd_test_alert,
            "probe": cmd_probe,
            "baseline": cmd_baseline,
            "cluster": cmd_cluster,
            "doctor": cmd_doctor,
        }[args.command]
        return handler(settings, args)
    except ConfigError as e:
        print(f"watcher: {e}", file=sys.stderr)
        return EXIT_CONFIG


def _settings(args: argparse.Namespace):
    from watcher.config import load_settings

    return load_settings(args.config)


def _setup_logging(level: str, fmt: str = "human") -> None:
    from watcher import logs

    logs.setup(level, fmt)


def _open_store(settings, create: bool = True):
    """The configured store. ``create=False`` for commands that only read: a missing SQLite file is an
    error that says where it was looked for, not a new empty database that answers "not polled yet"."""
    from watcher.store import StoreError, open_store

    if not create and not settings.storage.url and not settings.storage.path.exists():
        print(
            f"watcher: no database at {settings.storage.path}: `watcher run` creates it. If the daemon runs "
            "elsewhere, give this command its config (-c PATH or WATCHER_CONFIG); under systemd or Docker run "
            "it where STATE_DIRECTORY is set (see README, 'Where the database is')",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_FAIL)

    try:
        return open_store(settings)
    except StoreError as e:
        print(f"watcher: {e}", file=sys.stderr)
        raise SystemExit(EXIT_FAIL) from None


# -- commands -------------------------------------------------------------------


def cmd_run(settings, args) -> int:
    import asyncio

    from watcher.catalog import resolve
    from watcher.daemon import Daemon
    from watcher.store import StoreError

    _setup_logging(settings.log.level, args.log_format or settings.log.format)
    vendors = resolve(settings)
    import logging

    from watcher.doctor import summary, targets

    log = logging.getLogger("watcher.run")
    lines = summary(settings, vendors)
    for line in lines:
        log.log(logging.INFO if targets(settings) or "WARNING" not in line else logging.WARNING, "%s", line)
    store = _open_store(settings)
    try:
        asyncio.run(Daemon(settings, vendors, store).run())
    except StoreError as e:  # the leader lease could not reach the database at start
        print(f"watcher: {e}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        store.close()
    return EXIT_OK


def cmd_cluster(settings, args) -> int:
    """Who runs, where, who leads, and what each location sees that the others do not."""
    from watcher.probes.service import sightings
    from watcher.store.leader import in_cluster

    store = _open_store(settings, create=False)
    try:
        if not in_cluster(store):
            msg = f"not a cluster: one instance on the SQLite file {settings.storage.path}"
            if args.json:
                print(json.dumps({"cluster": False, "leader": None, "instances": [], "detail": msg}))
            else:
                print(msg + ' (several instances need storage.url = "postgresql://...")')
            return EXIT_OK
        alive_after = settings.cluster.failover_timeout
        insts = store.instances()
        lead = store.leader_record()
        states = store.detector_states("probe:")
        errors = store.source_errors_by_location()
    finally:
        store.close()
    now = datetime.now(UTC)
    rows = []
    leader = None
    for i in insts:
        alive = i.heartbeat_age_s is not None and i.heartbeat_age_s <= alive_after
        if i.is_leader and alive:
            leader = i.name
        n, failing = errors.get(i.location or "", (0, 0))
        rows.append(
            {
                "name": i.name,
                "location": i.location,
                "host": i.host,
                "pid": i.pid,
                "is_leader": bool(i.is_leader and alive),
                "alive": alive,
                "heartbeat_age_s": None if i.heartbeat_age_s is None else round(i.heartbeat_age_s, 1),
                "started_at": i.started_at.isoformat() if i.started_at else None,
                "sources": n,
                "sources_failing": failing,
            }
        )
    from watcher.probes.service import default_window

    window = settings.cluster.confirm_window or default_window(settings.probes.interval, alive_after)
    recent = sorted(
        (s for s in sightings(states) if (now - s.at).total_seconds() <= window),
        key=lambda s: (s.vendor, s.location),
    )
    local = [
        {"vendor": s.vendor, "location": s.location, "since": s.since.isoformat() if s.since else None}
        for s in recent
        if s.outage and s.network_ok
    ]
    blind = sorted({s.location for s in recent if not s.network_ok})
    seen_by: dict[str, list[str]] = {}
    for p in local:
        seen_by.setdefault(p["vendor"], []).append(p["location"])
    out = {
        "cluster": True,
        "leader": leader,
        "epoch": lead.get("epoch"),
        "leader_since": lead["since"].isoformat() if lead.get("since") else None,
        "instances": rows,
        "api_failing": local,
        "network_down": blind,
    }
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    print(f"leader: {leader or 'NONE (no instance holds the lease)'}  (epoch {out['epoch']})")
    print(f"{'instance':<16} {'location':<14} {'role':<9} {'heartbeat':>10}  {'host/pid':<24} sources")
    for r in rows:
        role = "leader" if r["is_leader"] else ("follower" if r["alive"] else "DOWN")
        hb = "-" if r["heartbeat_age_s"] is None else f"{r['heartbeat_age_s']:.0f}s ago"
        fail = f", {r['sources_failing']} failing" if r["sources_failing"] else ""
        print(
            f"{r['name']:<16} {str(r['location'] or '-'):<14} {role:<9} {hb:>10}  "
            f"{(r['host'] or '?') + '/' + str(r['pid'] or '?'):<24} {r['sources']}{fail}"
        )
    for v, locs in seen_by.items():
        print(f"probes of {v} fail from: {', '.join(locs)}")
    if blind:
        print(f"network down (no control host answers) at: {', '.join(blind)}")
    return EXIT_OK


def cmd_check(settings, args) -> int:
    import asyncio
    import logging

    from watcher.catalog import resolve
    from watcher.daemon import poll_all_once

    _setup_logging("error" if args.json else "warning")
    logging.getLogger("watcher.pipeline").setLevel(logging.ERROR)
    vendors = resolve(settings)
    store = _open_store(settings)
    try:
        asyncio.run(poll_all_once(settings, vendors, store))
        statuses = _statuses(settings, store, vendors)
    finally:
        store.close()
    _print_statuses(statuses, args.json)
    return EXIT_OK


def cmd_status(settings, args) -> int:
    from watcher.catalog import resolve

    vendors = resolve(settings)
    store = _open_store(settings, create=False)
    try:
        statuses = _statuses(settings, store, vendors)
        budgets = _probe_budgets(settings, store, vendors)
    finally:
        store.close()
    from watcher.doctor import database_label

    database = database_label(settings)
    if args.json:
        _print_statuses(statuses, True, {"database": database, "probe_budgets": budgets})
        return EXIT_OK
    _print_statuses(statuses, False)
    if budgets:
        print("\nprobe budget today (UTC):")
        for b in budgets:
            tokens = f"{b['spent_tokens']} of {b['daily_tokens']} tokens"
            cost = f"{b['spent_cost']} of {b['daily_cost']}"
            print(f"  {b['vendor']:<14} {tokens}, cost {cost}" + ("  STOPPED" if b["stopped"] else ""))
    print(f"\ndatabase: {database}")
    return EXIT_OK


def _probe_budgets(settings, store, vendors) -> list[dict]:
    """Each probed vendor's spending today, from the saved budget (nothing is sent)."""

    from watcher.config import ConfigError as _ConfigError
    from watcher.probes.budget import Budget
    from watcher.probes.runner import budget_policies, probe_targets

    try:
        targets = probe_targets(settings, vendors)
    except _ConfigError:  # an unreadable key file: status still shows the vendors
        return []
    if not targets:
        return []
    policies = budget_policies(targets)
    saved = store.budget_state("_all")
    budget = Budget(policies)
    if saved:
        import contextlib

        with contextlib.suppress(Exception):  # unreadable state: show today as unspent, not a crash
            budget = Budget.from_dict(saved, policies, None)
    now = datetime.now(UTC)
    out = []
    for t in targets:
        r = budget.remaining(t.vendor.id, now)
        out.append(
            {
                "vendor": t.vendor.id,
                "spent_tokens": r.spent_tokens,
                "daily_tokens": t.settings.daily_tokens,
                "spent_cost": f"{r.spent_cost:.4f}",
                "daily_cost": f"{t.settings.daily_cost:.2f}",
                "stopped": r.stopped,
            }
        )
    return out


def cmd_incidents(settings, args) -> int:
    from watcher.status import incident_json

    store = _open_store(settings, create=False)
    try:
        rows = store.incidents(
            vendor=args.vendor, open_only=args.open, limit=args.limit * (1 if args.all else 4)
        )
    finally:
        store.close()
    if not args.all:
        rows = [i for i in rows if not i.backfilled][: args.limit]
    if args.json:  # one document, also when empty
        print(json.dumps({"incidents": [incident_json(i) for i in rows]}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not rows:
        print(
            "no incidents" + (" open" if args.open else "") + (f" for {args.vendor}" if args.vendor else "")
        )
        return EXIT_OK
    now = datetime.now(UTC)
    table = [
        [
            f"#{i.id}",
            i.vendor,
            i.kind.value,
            _state_words(i),
            _age(now, i.started_at or i.opened_at),
            _duration(i),
            i.title,
        ]
        for i in rows
    ]
    _print_table(["ID", "VENDOR", "KIND", "STATE", "STARTED", "LASTED", "TITLE"], table)
    return EXIT_OK


def cmd_health(settings, args) -> int:
    """For container and service health checks: is the daemon still polling, are alerts getting through?"""
    if not settings.storage.url and not settings.storage.path.exists():
        print(f"unhealthy: no database at {settings.storage.path} yet", file=sys.stderr)
        return EXIT_FAIL
    from watcher.store import StoreError, open_store

    try:
        store = open_store(settings)
    except StoreError as e:  # PostgreSQL down or refusing us: unhealthy, in its own words (no password)
        print(f"unhealthy: {e}", file=sys.stderr)
        return EXIT_FAIL
    from watcher.alerts.deliver import stuck_alerts

    try:
        records = store.sources()
        stuck, _ = stuck_alerts(store, datetime.now(UTC), settings)
    except StoreError as e:
        print(f"unhealthy: {e}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        store.close()
    if stuck:
        for reason in stuck:
            print(f"unhealthy: {reason}", file=sys.stderr)
        return EXIT_FAIL
    from watcher.catalog import resolve

    keys = {spec.key for v in resolve(settings) for spec in v.sources}
    records = [r for r in records if r.key in keys] or records
    polled = [r.last_polled_at for r in records if r.last_polled_at]
    max_age = args.max_age if args.max_age is not None else max(300.0, 3 * settings.poll.interval)
    if not polled:
        print("unhealthy: nothing polled yet", file=sys.stderr)
        return EXIT_FAIL
    now = datetime.now(UTC)
    age = (now - max(polled)).total_seconds()
    if age > max_age:
        print(f"unhealthy: last poll {age:.0f}s ago (limit {max_age:.0f}s)", file=sys.stderr)
        return EXIT_FAIL
    failing = [r for r in records if r.error]
    # polled is not enough: a watcher whose every poll fails (no network, DNS, proxy) sees nothing
    answered = [r.last_success_at for r in records if r.last_success_at]
    answer_age = (now - max(answered)).total_seconds() if answered else None
    if answer_age is None or answer_age > max_age:
        since = "ever" if answer_age is None else f"for {answer_age:.0f}s (limit {max_age:.0f}s)"
        example = f"; e.g. {failing[0].key}: {failing[0].error}" if failing else ""
        print(
            f"unhealthy: no source has answered {since}: 0 of {len(records)} sources answering{example}. "
            "Check this machine's network, DNS or proxy (`watcher doctor`)",
            file=sys.stderr,
        )
        return EXIT_FAIL
    n_ok = len(records) - len(failing)
    print(f"healthy: last poll {age:.0f}s ago; {n_ok} of {len(records)} sources answering")
    return EXIT_OK


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1d', '1h30m' → seconds (the same parser as ``/watcher mute`` in Slack)."""
    from watcher.alerts.commands import parse_duration as parse

    return parse(text)


def _engine(settings, store):
    from watcher.alerts.engine import AlertEngine
    from watcher.catalog import resolve

    return AlertEngine(settings, store, resolve(settings))


def cmd_ack(settings, args) -> int:
    import getpass

    from watcher.alerts.engine import plain_name

    store = _open_store(settings, create=False)
    try:
        try:
            by = plain_name(args.by) if args.by else getpass.getuser()
        except ValueError as e:
            print(f"watcher: --by: {e}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            inc = _engine(settings, store).acknowledge(args.incident, by, args.reason, via="cli")
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
    store = _open_store(settings)
    try:
        engine = _engine(settings, store)
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

    store = _open_store(settings, create=False)
    try:
        n = store.end_mutes(args.vendor, datetime.now(UTC), getpass.getuser())
    finally:
        store.close()
    print(f"{args.vendor}: {'mute ended' if n else 'was not muted'}")
    return EXIT_OK


def cmd_outbox(settings, args) -> int:
    from watcher.alerts.deliver import wait_reasons

    store = _open_store(settings)
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
    _print_table(
        ["ID", "INCIDENT", "ACTION", "TO", "STATE", "TRIES", "WHEN", "WHY / ERROR"],
        [
            [
                f"#{n.id}",
                f"#{n.incident_id}",
                n.action.value,
                f"{n.channel}:{n.target}",
                n.state + (" (held)" if n.held and n.state == "pending" else ""),
                str(n.attempts),
                _age(now, n.delivered_at or n.not_before),
                why.get(n.id) or n.last_error or "",
            ]
            for n in rows
        ],
    )
    return EXIT_OK


def cmd_probe(settings, args) -> int:
    """Probe now, through the same runner as the daemon (budget and detector state included)."""
    import asyncio

    from watcher.catalog import resolve
    from watcher.fetch import make_client
    from watcher.pipeline import Pipeline
    from watcher.probes.runner import ProbeRunner
    from watcher.probes.service import ProbeService
    from watcher.store.leader import Observer, identity, in_cluster

    vendors = resolve(settings)
    store = _open_store(settings)

    async def go():
        async with make_client(user_agent=settings.poll.user_agent) as client:
            # in a cluster this command measures from its location like a follower: the leader
            # alone merges findings and spends the canary budget
            lease = Observer() if in_cluster(store) else None
            runner = ProbeRunner(
                settings, store, vendors, client, location=identity(settings)[1] if lease else None
            )
            if not runner.targets:
                return None, []
            wanted = [args.vendor] if args.vendor else list(runner.targets)
            unknown = [v for v in wanted if v not in runner.targets]
            if unknown:
                return runner, unknown
            service = ProbeService(
                runner,
                Pipeline(store, client, settings, vendors, lease=lease),
                _engine(settings, store).on_changes,
            )
            return runner, [await service.probe(v) for v in wanted]

    runner, outs = asyncio.run(go())
    try:
        if runner is None:
            print(
                "watcher: no vendor is probed: set probes.vendors.<id>.model and the key "
                "WATCHER_PROBES__VENDORS__<ID>__KEY (see README, 'Probes and canaries')",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        if outs and isinstance(outs[0], str):
            print(
                f"watcher: not probed: {', '.join(outs)}; probed: {', '.join(runner.targets)}",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        if args.json:
            print(json.dumps({"probes": [_outcome_json(out) for out in outs]}, indent=2))
            return EXIT_OK
        for out in outs:
            _print_outcome(out)
    finally:
        store.close()
    return EXIT_OK


def _outcome_json(out) -> dict:
    return {
        "vendor": out.vendor,
        "at": out.at.isoformat(),
        "network": {"ok": out.network.ok, "detail": out.network.detail},
        "requests": [
            {
                "kind": c.result.kind,
                "model": c.result.model,
                "ok": c.result.ok,
                "status": c.result.status,
                "error_class": c.result.error_class,
                "error": c.result.error,
                "ttft_s": c.result.ttft_s,
                "total_s": c.result.total_s,
                "tokens_per_s": c.result.tokens_per_s,
                "canary": c.canary,
                "passed": None if c.score is None else c.score.passed,
                "detail": None if c.score is None else c.score.detail,
            }
            for c in out.checked
        ],
        "findings": [
            {"kind": r.kind.value if r.kind else None, "title": r.title, "reason": r.reason}
            for r in (out.snapshot.incidents if out.snapshot else ()) or ()
        ],
        "budget": None
        if out.budget is None
        else {
            "spent_tokens": out.budget.spent_tokens,
            "tokens_left": out.budget.tokens,
            "spent_cost": str(out.budget.spent_cost),
            "cost_left": None if out.budget.cost is None else str(out.budget.cost),
        },
        "notes": out.notes,
    }


def _print_outcome(out) -> None:
    print(f"{out.vendor}  (network: {'ok' if out.network.ok else 'DOWN'}, {out.network.detail})")
    rows = []
    for c in out.checked:
        r = c.result
        what = "models list" if r.kind == "models" else f"canary {c.canary}"
        if not r.ok:
            result = f"FAILED {r.error_class}: {r.error}"
        elif c.score is not None:
            result = ("pass" if c.score.passed else "WRONG") + f": {c.score.detail}"
        else:
            result = f"{len(r.models or ())} models"
        ttft = f"{r.ttft_s:.2f}s" if r.ttft_s is not None else ""
        total = f"{r.total_s:.2f}s" if r.total_s is not None else ""
        rows.append([what, ttft, total, result[:100]])
    _print_table(["REQUEST", "TTFT", "TOTAL", "RESULT"], rows)
    for r in (out.snapshot.incidents if out.snapshot else ()) or ():
        print(f"  finding: {r.kind.value if r.kind else '?'}: {r.title} ({r.reason})")
    if out.budget is not None:
        b = out.budget
        left = f"{b.tokens} tokens" if b.tokens is not None else "no token limit"
        print(f"  budget today: {b.spent_tokens} tokens, {b.spent_cost:.4f} spent; {left} left")
    for n in out.notes:
        print(f"  note: {n}")
    print()


def cmd_baseline(settings, args) -> int:
    """What the detectors learned and where each stands, from the database."""
    from watcher.catalog import resolve
    from watcher.probes.runner import VendorDetectors, probe_targets
    from watcher.store.leader import identity, in_cluster

    store = _open_store(settings, create=False)
    try:
        targets = probe_targets(settings, resolve(settings))
        rows, data = [], []
        for t in targets:
            det = VendorDetectors(settings, t)
            saved = store.detector_state(
                f"probe:{t.vendor.id}@{identity(settings)[1]}"
                if in_cluster(store)
                else f"probe:{t.vendor.id}"
            )
            if saved:
                det.load(saved)
            for name, d in (("quality", det.quality), ("errors", det.errors), ("latency", det.latency)):
                learning = getattr(d, "calibrating", False) or getattr(d, "learning", False)
                state = (
                    "ALARM" if d.alarm else ("warning" if d.warn else ("learning" if learning else "normal"))
                )
                level = getattr(d, "level", 0.0)
                rows.append([t.vendor.id, name, state, f"{level:.0%}", d.explain()[:110]])
                data.append(
                    {
                        "vendor": t.vendor.id,
                        "stream": name,
                        "state": state,
                        "level": level,
                        "explain": d.explain(),
                    }
                )
            rows.append(
                [
                    t.vendor.id,
                    "outage",
                    "ALARM" if det.outage.alarm else "normal",
                    "",
                    det.outage.explain()[:110],
                ]
            )
            data.append(
                {
                    "vendor": t.vendor.id,
                    "stream": "outage",
                    "state": "ALARM" if det.outage.alarm else "normal",
                    "explain": det.outage.explain(),
                }
            )
    finally:
        store.close()
    if args.json:
        print(json.dumps({"streams": data}, indent=2))
        return EXIT_OK
    if not rows:
        print("no vendor is probed (see README, 'Probes and canaries')")
        return EXIT_OK
    _print_table(["VENDOR", "STREAM", "STATE", "LEVEL", "WHAT IT SEES"], rows)
    return EXIT_OK


def cmd_test_alert(settings, args) -> int:
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
    if not any(r.slack_channels or r.emails or r.apprise for r in routes):
        names = ", ".join(repr(r.name) for r in routes)
        print(
            f"watcher: no target to test: route(s) {names} have no slack_channels, emails or apprise URLs, "
            "so no alert reaches anyone. Add one (or run `watcher init`), then `watcher doctor`",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    # the other watched vendors as they are now, from the daemon's database when there is one
    store = None
    if settings.storage.url or settings.storage.path.exists():
        try:
            store = _open_store(settings, create=False)
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


def cmd_show(settings, args) -> int:
    from watcher.status import incident_json

    store = _open_store(settings, create=False)
    try:
        inc = store.incident(args.incident)
        events = store.events(args.incident) if inc else []
    finally:
        store.close()
    if inc is None:
        print(f"watcher: no incident #{args.incident}", file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        doc = incident_json(inc)
        doc["events"] = [
            {
                "at": e.event.at.isoformat(),
                "type": e.event.type.value,
                "status": e.event.status,
                "text": e.event.text,
            }
            for e in events
        ]
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"#{inc.id} {inc.vendor}: {inc.title}")
    print(f"  kind:   {inc.kind} ({inc.reason})")
    print(f"  state:  {_state_words(inc)}; vendor status {inc.status}; impact {inc.impact or '-'}")
    if inc.components:
        print(f"  components: {', '.join(inc.components)}")
    if inc.url:
        print(f"  link:   {inc.url}")
    print("  timeline:")
    for e in events:
        text = " ".join(e.event.text.split())
        print(f"    {e.event.at:%Y-%m-%d %H:%M}Z  {e.event.type:<18} {text[:200]}")
    return EXIT_OK


def cmd_doctor(settings, args) -> int:
    from watcher.doctor import failed, run_checks

    checks = run_checks(settings, machine=True)
    if args.json:
        print(json.dumps({"ok": not failed(checks), "checks": [c.to_json() for c in checks]}, indent=2))
    else:
        where = args.config or __import__("os").environ.get("WATCHER_CONFIG")
        print(f"config: {where or 'none (defaults; `watcher init` writes one)'}")
        for c in checks:
            print(c.line())
        bad = sum(1 for c in checks if c.status == "FAIL")
        print(
            f"{bad} check(s) failed: fix them and run `watcher doctor` again" if bad else "all checks passed"
        )
    return EXIT_FAIL if failed(checks) else EXIT_OK


def cmd_init(args) -> int:
    import os
    from pathlib import Path

    from watcher.onboarding import Answers, ask, interactive_ok, validate, write

    target = Path(args.output or args.config or "watcher.toml")
    a = Answers(
        vendors=[v.strip() for v in args.vendors.split(",") if v.strip()],
        slack_channels=args.slack_channel,
        slack_token=os.environ.get("WATCHER_SLACK__TOKEN") or None,
        emails=args.email,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_user=args.smtp_user,
        smtp_password=os.environ.get("WATCHER_EMAIL__PASSWORD") or None,
        sender=args.sender,
        timezone=args.timezone,
        locale=args.locale,
    )
    for item in args.used_for:
        vid, sep, what = item.partition("=")
        if not sep or not what.strip():
            print(
                f"watcher: --used-for {item!r}: write it ID=WHAT, e.g. openai='blog drafts'", file=sys.stderr
            )
            return EXIT_CONFIG
        a.used_for[vid.strip()] = what.strip()
    if target.exists() and not args.force:
        print(
            f"watcher: {target} already exists: keep it, or run `watcher init --force` to replace it",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    interactive = not args.yes and interactive_ok()
    if interactive:
        print(f"Setting watcher up: this writes {target.resolve()}. Ctrl-C stops without writing.")
        ask(a)
    problems = validate(a)
    if problems:
        for p in problems:
            print(f"watcher: {p}", file=sys.stderr)
        return EXIT_CONFIG
    written = write(a, target, force=args.force)
    print(f"wrote {written}")
    if not (a.slack_channels or a.emails):
        print(
            "note: no Slack channel or email given: no alert will reach anyone (run `watcher init --force` again)"
        )
    if a.slack_channels and not a.slack_token:
        print("note: no Slack token given: export WATCHER_SLACK__TOKEN=xoxb-... before `watcher run`")
    from watcher.config import load_settings

    settings = load_settings(written)
    status = EXIT_OK
    if not args.no_doctor:
        print("\nwatcher doctor:")
        ns = argparse.Namespace(json=False, config=str(written))
        status = cmd_doctor(settings, ns)
    send = args.test_alert
    if interactive and not send and (a.slack_channels or a.emails):
        send = input("Send a test alert now? [y/N] ").strip().lower() in ("y", "yes", "o", "oui")
    if send:
        print("\nwatcher test-alert:")
        status = max(status, cmd_test_alert(settings, argparse.Namespace(route=None)))
    print(f"\nnext: watcher run -c {written}")
    return status


def cmd_config_check(settings, args) -> int:
    from watcher.catalog import resolve
    from watcher.doctor import database_label, failed, run_checks

    vendors = resolve(settings)
    checks = run_checks(settings, machine=False)  # the doctor's checks of routes and channels
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not failed(checks),
                    "checks": [c.to_json() for c in checks],
                    "database": database_label(settings),
                    "vendors": [
                        {
                            "id": v.id,
                            "name": v.name,
                            "components": list(v.components) if v.components is not None else None,
                            "uses": list(v.uses),
                            "sources": [
                                {
                                    "id": s.id,
                                    "type": s.type,
                                    "url": s.url,
                                    "interval": s.interval,
                                    "confidence": s.confidence or v.confidence,
                                }
                                for s in v.sources
                            ],
                        }
                        for v in vendors
                    ],
                },
                indent=2,
            )
        )
        return EXIT_FAIL if failed(checks) else EXIT_OK
    n = sum(len(v.sources) for v in vendors)
    print(f"config OK: {len(vendors)} vendors, {n} sources, database {database_label(settings)}")
    for v in vendors:
        extra = f"  (only components: {', '.join(v.components)})" if v.components is not None else ""
        print(f"  {v.id:<14} {v.name}{extra}")
        if v.uses:
            print(f"      uses: {_uses_line(v)}")
        if not v.sources:
            print("      (no machine-readable status source known: state will be unknown)")
        for s in v.sources:
            sure = s.confidence or v.confidence
            print(
                f"      {s.id:<14} {s.type:<24} every {s.interval:g}s  {s.url}"
                + (f"  ({sure})" if sure else "")
            )
    from watcher.catalog import load_catalog

    bare = [vid for vid, v in load_catalog().items() if not v.get("sources")]
    if bare:
        print(f"catalog vendors without a source (never watched): {', '.join(bare)}")
    print("alerts:")
    for c in checks:
        print("  " + c.line())
    if failed(checks):
        print(
            "config is valid, but alerts will not work: fix the FAIL lines (`watcher doctor` checks the rest)"
        )
        return EXIT_FAIL
    return EXIT_OK


def _uses_line(v) -> str:
    """``api (Chat Completions, Responses, ...); chat app (...)``: what ``uses`` means for this vendor."""
    from watcher.catalog.uses import capability_word

    parts = []
    for entry in v.uses:
        cap = capability_word(entry)
        if cap is None:
            parts.append(f"components named {entry!r}")
        elif cap in v.capabilities:
            names = list(v.capabilities[cap])
            parts.append(f"{cap} ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})")
        else:
            parts.append(f"{cap} (no component of {v.name} known for it)")
    return "; ".join(parts) + "; other components: quiet notices (unknown ones count)"


def cmd_demo(args) -> int:
    """``watcher demo``: needs no configuration (it builds its own, on a temporary database)."""
    from watcher.demo import run_from_args

    return run_from_args(args)


def cmd_classify(explain: bool = False) -> int:
    from watcher.incidents.classify import classify_record, evidence_from_record
    from watcher.incidents.classify import explain as explain_evidence

    status = EXIT_OK
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("each line must be a JSON object")
            out: dict[str, Any]
            if explain:
                out = explain_evidence(evidence_from_record(record))
            else:
                result = classify_record(record)
                out = {"kind": result.kind.value, "reason": result.reason}
        except (ValueError, TypeError) as e:
            out = {"kind": None, "reason": None, "error": f"line {n}: {e}"}
            status = EXIT_FAIL
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return status


# -- output helpers ---------------------------------------------------------------


def _statuses(settings, store, vendors):
    from watcher.status import all_statuses

    return all_statuses(store, vendors, datetime.now(UTC))


_STATE_MARK = {
    "operational": "ok",
    "degraded": "DEGRADED",
    "outage": "OUTAGE",
    "maintenance": "maint",
    "unknown": "?",
}


def _print_statuses(statuses, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "checked_at": datetime.now(UTC).isoformat(),
                    "vendors": [s.to_json() for s in statuses],
                    **(extra or {}),
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    rows = [[s.vendor.id, s.state.value, s.reason] for s in statuses]
    _print_table(["VENDOR", "STATE", "WHY"], rows)
    now = datetime.now(UTC)
    incidents = [i for s in statuses for i in s.incidents + s.maintenances]
    if incidents:
        print()
        print("Open incidents:")
        _print_table(
            ["ID", "VENDOR", "KIND", "STATUS", "AGE", "TITLE"],
            [
                [
                    f"#{i.id}",
                    i.vendor,
                    i.kind.value,
                    _state_words(i),
                    _age(now, i.started_at or i.opened_at),
                    i.title,
                ]
                for i in incidents
            ],
        )


def _state_words(i) -> str:
    if i.is_maintenance and i.phase is not None:
        return i.phase.value
    return i.status.value if i.is_open else "resolved"


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    secs = int((now - then).total_seconds())
    if secs < 0:
        return "in " + _span(-secs)
    return _span(secs) + " ago"


def _span(secs: int) -> str:
    if secs < 90:
        return f"{secs}s"
    if secs < 5400:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"
    return f"{secs // 86400}d"


def _duration(i) -> str:
    if i.is_open or i.resolved_at is None:
        return "open" if i.is_open else "-"
    start = i.started_at or i.opened_at
    return _span(max(0, int((i.resolved_at - start).total_seconds())))


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    import shutil

    width = shutil.get_terminal_size((120, 20)).columns
    cols = len(header)
    sizes = [max(len(str(r[c])) for r in [header, *rows]) for c in range(cols)]
    fixed = sum(sizes[:-1]) + 2 * (cols - 1)
    sizes[-1] = max(20, min(sizes[-1], width - fixed))
    for r in [header, *rows]:
        cells = [str(x) for x in r]
        last = cells[-1]
        if len(last) > sizes[-1]:
            last = last[: sizes[-1] - 1] + "…"
        line = "  ".join(cells[c].ljust(sizes[c]) for c in range(cols - 1))
        print(f"{line}  {last}".rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
