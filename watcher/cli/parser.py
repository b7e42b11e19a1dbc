"""The command line's grammar: every command, option and argument type of ``watcher``.

Apart from the commands so that ``watcher --help`` and usage errors need nothing but argparse.
"""

from __future__ import annotations

import argparse

from watcher.i18n import locales


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
        "demo",
        parents=[common],
        help="replay a real incident against a simulated vendor: no accounts, no internet",
    )
    dm.add_argument(
        "--speed", type=float, default=1.0, help="replay this many times faster (1: about a minute)"
    )
    dm.add_argument("--no-web", action="store_true", help="do not start the local web app")
    dm.add_argument("--port", type=_port, default=8765, help="web port on 127.0.0.1 (a free one if taken)")
    dm.add_argument("--stay", action="store_true", help="keep the web app up after the replay, until Ctrl-C")
    dm.add_argument(
        "--locale",
        choices=locales(),
        help="language of the demo and its alerts (default: alerts.locale of the config, else en)",
    )

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
