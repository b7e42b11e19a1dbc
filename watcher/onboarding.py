"""``watcher init``: a first configuration for a new admin, asked interactively or given by flags.

It writes a commented ``watcher.toml`` (secrets go to files beside it, mode 600, never into the TOML),
then runs the doctor and, if asked, sends a test alert.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Answers:
    vendors: list[str] = field(default_factory=list)
    used_for: dict[str, str] = field(default_factory=dict)
    slack_channels: list[str] = field(default_factory=list)
    slack_token: str | None = None
    emails: list[str] = field(default_factory=list)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    sender: str | None = None
    timezone: str = "UTC"
    locale: str = "en"


def catalog_choices() -> dict[str, str]:
    """Catalog vendor id -> name, for the vendors watcher can watch."""
    from watcher.catalog import load_catalog

    return {vid: str(v.get("name") or vid) for vid, v in load_catalog().items() if v.get("sources")}


def validate(a: Answers) -> list[str]:
    """Problems that would make the written config wrong, in words (empty: fine)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    problems = []
    known = catalog_choices()
    unknown = [v for v in a.vendors if v not in known]
    if unknown:
        problems.append(f"unknown vendor(s) {', '.join(unknown)}; known: {', '.join(known)}")
    stray = [v for v in a.used_for if v not in a.vendors]
    if stray:
        problems.append(f"--used-for names vendor(s) not chosen: {', '.join(stray)}")
    try:
        ZoneInfo(a.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"unknown time zone {a.timezone!r} (e.g. Europe/Paris, America/New_York, UTC)")
    if a.locale not in ("en", "fr"):
        problems.append(f"language {a.locale!r} is not available: en or fr")
    for c in a.slack_channels:
        if not (c[:1] in "CG" and c[1:].isalnum() and len(c) >= 9):
            problems.append(f"{c!r} is not a Slack channel ID (channel menu > Copy link: the C... part)")
    for e in a.emails:
        if "@" not in e or " " in e:
            problems.append(f"{e!r} is not an email address")
    if a.emails and not (a.smtp_host and a.sender):
        problems.append("email alerts need an SMTP server and a sender (--smtp-host, --sender)")
    return problems


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_q(x) for x in items) + "]"


def render(a: Answers, secrets: dict[str, Path]) -> str:
    """The commented watcher.toml for these answers."""
    names = catalog_choices()
    out = [
        "# watcher configuration, written by `watcher init`. Check it with `watcher doctor -c watcher.toml`;",
        "# run with `watcher run -c watcher.toml`. Every key: README, 'Configuration'.",
        "# Secrets never go in this file: they are in files beside it (mode 600) or in WATCHER_* variables.",
        "",
        "# The tools the team uses (catalog ids; `watcher config check` lists what each one watches).",
        f"watch = {_list(a.vendors)}" if a.vendors else "# watch = [...]   # every catalog vendor when left out",
        "",
        "[storage]",
        "# SQLite file, created on first run. A relative path is from this file's folder",
        "# (or from $STATE_DIRECTORY under systemd and Docker), so every command finds the same database.",
        'path = "watcher.db"',
        "",
        "[alerts]",
        f"locale = {_q(a.locale)}          # language of alerts, board and report: en or fr",
        f"timezone = {_q(a.timezone)}      # the zone of times in alerts",
        "",
    ]
    for vid, what in a.used_for.items():
        out += [
            f"# {names.get(vid, vid)}: what the team uses it for; each alert's playbook starts with it",
            f"[vendors.{vid}]",
            f"used_for = {_list([w.strip() for w in what.split(';') if w.strip()])}",
            "",
        ]
    out += [
        "# Who hears about what: every incident of every watched tool goes to these channels.",
        "[[routes]]",
        'name = "team"',
        'vendors = ["*"]',
        f"slack_channels = {_list(a.slack_channels)}   # channel IDs; invite the bot to private ones",
        f"emails = {_list(a.emails)}",
        "",
    ]
    if a.slack_channels:
        out += ["[slack]"]
        if "slack" in secrets:
            out += [f"token_file = {_q(str(secrets['slack']))}   # the bot token (xoxb-...), mode 600"]
        else:
            out += ["# the bot token: export WATCHER_SLACK__TOKEN=xoxb-... (or token_file = \"...\")"]
        out += [""]
    if a.emails:
        out += [
            "[email]",
            f"host = {_q(a.smtp_host or '')}",
            f"port = {a.smtp_port}             # 587: STARTTLS; 465: set ssl = true",
            f"sender = {_q(a.sender or '')}",
        ]
        if a.smtp_user:
            out += [f"username = {_q(a.smtp_user)}"]
        if "email" in secrets:
            out += [f"password_file = {_q(str(secrets['email']))}   # mode 600"]
        elif a.smtp_user:
            out += ["# the password: export WATCHER_EMAIL__PASSWORD=... (or password_file = \"...\")"]
        out += [""]
    return "\n".join(out)


def write(a: Answers, path: Path, *, force: bool) -> Path:
    """Write the config (and secret files beside it); refuses to overwrite unless ``force``."""
    path = path.expanduser().resolve()
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists: keep it, or run `watcher init --force` to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    secrets: dict[str, Path] = {}
    for kind, value in (("slack", a.slack_token), ("email", a.smtp_password)):
        if value:
            p = path.parent / f"{kind}-{'token' if kind == 'slack' else 'password'}"
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value.strip() + "\n")
            os.chmod(p, 0o600)
            secrets[kind] = p
    path.write_text(render(a, secrets), encoding="utf-8")
    return path


# -- interactive -------------------------------------------------------------------------------


def ask(a: Answers, inp=input, secret=None) -> Answers:
    """Ask a new admin, one question at a time; Enter keeps the default shown in brackets."""
    import getpass

    secret = secret or getpass.getpass
    names = catalog_choices()
    ids = list(names)
    print("Which tools does your team use? Numbers or ids, separated by commas (Enter: all of them).")
    for n, vid in enumerate(ids, 1):
        print(f"  {n:>2}. {vid:<14} {names[vid]}")
    while True:
        raw = inp("tools: ").strip()
        chosen = []
        for part in [p.strip() for p in raw.split(",") if p.strip()]:
            chosen.append(ids[int(part) - 1] if part.isdigit() and 0 < int(part) <= len(ids) else part)
        bad = [c for c in chosen if c not in names]
        if not bad:
            a.vendors = chosen
            break
        print(f"  unknown: {', '.join(bad)}; choose from the list")
    for vid in a.vendors:
        what = inp(f"What does the team use {names[vid]} for? (e.g. blog drafts; ad copy; Enter: skip) ").strip()
        if what:
            a.used_for[vid] = what
    print("Where should alerts go? Slack (a bot token and a channel ID), email, or both.")
    channel = inp("Slack channel ID (C..., Enter: no Slack): ").strip()
    if channel:
        a.slack_channels = [channel]
        a.slack_token = secret("Slack bot token (xoxb-..., not shown): ").strip() or None
    email = inp("Email address for alerts (Enter: no email): ").strip()
    if email:
        a.emails = [email]
        a.smtp_host = inp("SMTP server host: ").strip() or None
        a.smtp_port = int(inp("SMTP port [587]: ").strip() or 587)
        a.smtp_user = inp("SMTP user name (Enter: none): ").strip() or None
        if a.smtp_user:
            a.smtp_password = secret("SMTP password (not shown): ") or None
        a.sender = inp(f"Sender address [{a.smtp_user or 'watcher@example.com'}]: ").strip() or (
            a.smtp_user if a.smtp_user and "@" in a.smtp_user else "watcher@example.com"
        )
    a.timezone = inp(f"Time zone [{a.timezone}]: ").strip() or a.timezone
    a.locale = inp(f"Language of alerts, en or fr [{a.locale}]: ").strip() or a.locale
    return a


def interactive_ok() -> bool:
    return sys.stdin.isatty()
