"""What every command group shares: exit codes, settings, opening the store, printing tables and states.

Kept apart from the commands so that each command module imports this and the app, and no command
module needs the dispatcher (only ``init`` reuses another command: ``test-alert``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


DEFAULT_CONFIG = "watcher.toml"
"""What ``watcher init`` writes in the working folder, and what every command reads from there."""


def config_path(args: argparse.Namespace) -> tuple[str | None, str]:
    """The config file every command reads, and where that choice came from.

    ``-c PATH``, else ``$WATCHER_CONFIG``, else ``./watcher.toml`` when it exists. The last one is
    why this exists: ``watcher init`` writes ``watcher.toml`` in the working folder, and a new admin
    who then types ``watcher doctor`` (or ``status``, ``run``, ``demo``) there must get that file,
    not the defaults; every command asks this one function, so none disagrees about the config.
    """
    given = getattr(args, "config", None)
    if given:
        return given, "-c"
    env = os.environ.get("WATCHER_CONFIG")
    if env:
        return env, "WATCHER_CONFIG"
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG, "working folder"
    return None, "none"


def settings_from(args: argparse.Namespace):
    """The settings of ``-c`` (or ``$WATCHER_CONFIG``) and the environment, routes' channels checked.

    The channel names of routes' ``targets`` are checked here, against the channel registry, because
    the config (a lower stage) cannot know the channels; every command but ``init`` loads through this.
    """

    from watcher.alerts.channels import registry
    from watcher.config import load_settings

    path = config_path(args)[0]
    settings = load_settings(path)
    registry.check_routes(settings.routes, f"in {path}" if path else "in the environment")
    return settings


def setup_logging(level: str, fmt: str = "human") -> None:
    from watcher import logs

    logs.setup(level, fmt)


def open_store_or_exit(settings, create: bool = True):
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


def alert_engine(settings, store):
    from watcher.alerts.engine import AlertEngine
    from watcher.catalog import resolve

    return AlertEngine(settings, store, resolve(settings))


# -- output helpers ---------------------------------------------------------------


def vendor_statuses(settings, store, vendors):
    from watcher.status import all_statuses

    return all_statuses(store, vendors, datetime.now(UTC))


_STATE_MARK = {
    "operational": "ok",
    "degraded": "DEGRADED",
    "outage": "OUTAGE",
    "maintenance": "maint",
    "unknown": "?",
}


def print_statuses(statuses, as_json: bool, extra: dict | None = None) -> None:
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
    print_table(["VENDOR", "STATE", "WHY"], rows)
    now = datetime.now(UTC)
    incidents = [i for s in statuses for i in s.incidents + s.maintenances]
    if incidents:
        print()
        print("Open incidents:")
        print_table(
            ["ID", "VENDOR", "KIND", "STATUS", "AGE", "TITLE"],
            [
                [
                    f"#{i.id}",
                    i.vendor,
                    i.kind.value,
                    state_words(i),
                    age_words(now, i.started_at or i.opened_at),
                    i.title,
                ]
                for i in incidents
            ],
        )


def state_words(i) -> str:
    if i.is_maintenance and i.phase is not None:
        return i.phase.value
    return i.status.value if i.is_open else "resolved"


def age_words(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    secs = int((now - then).total_seconds())
    if secs < 0:
        return "in " + span_words(-secs)
    return span_words(secs) + " ago"


def span_words(secs: int) -> str:
    if secs < 90:
        return f"{secs}s"
    if secs < 5400:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"
    return f"{secs // 86400}d"


def incident_duration(i) -> str:
    if i.is_open or i.resolved_at is None:
        return "open" if i.is_open else "-"
    start = i.started_at or i.opened_at
    return span_words(max(0, int((i.resolved_at - start).total_seconds())))


def print_table(header: list[str], rows: list[list[str]]) -> None:
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
