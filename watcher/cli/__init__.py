"""The ``watcher`` command: parse arguments, call the app, print. Nothing else lives here.

One module per group of commands, so that each stays short and a command is found by what it is about:
:mod:`.parser` (the arguments), :mod:`.common` (opening the store, printing tables and states),
:mod:`.watching` (run, check, status, incidents, show, health, cluster), :mod:`.alerting` (ack, mute,
unmute, outbox, test-alert), :mod:`.probing` (probe, baseline) and :mod:`.setup` (init, config check,
doctor, demo, classify). This module dispatches.

Imports are deferred into each command so that ``watcher --help`` starts fast.
Exit codes: 0 success, 1 a runtime failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import sys

from watcher.cli.alerting import cmd_ack, cmd_mute, cmd_outbox, cmd_test_alert, cmd_unmute, parse_duration
from watcher.cli.common import EXIT_CONFIG, EXIT_FAIL, EXIT_OK, settings_from
from watcher.cli.parser import build_parser
from watcher.cli.probing import cmd_baseline, cmd_probe
from watcher.cli.setup import cmd_classify, cmd_config_check, cmd_demo, cmd_doctor, cmd_init
from watcher.cli.watching import (
    cmd_check,
    cmd_cluster,
    cmd_health,
    cmd_incidents,
    cmd_run,
    cmd_show,
    cmd_status,
)

__all__ = [
    "main",
    "build_parser",
    "parse_duration",
    "EXIT_OK",
    "EXIT_FAIL",
    "EXIT_CONFIG",
]


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
        settings = settings_from(args)
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


if __name__ == "__main__":
    raise SystemExit(main())
