"""Commands that set watcher up or explain it: init, config check, doctor, demo, classify.

None of them needs a running daemon; they are what a new admin runs first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from watcher.cli.alerting import cmd_test_alert
from watcher.cli.common import EXIT_CONFIG, EXIT_FAIL, EXIT_OK, config_path, settings_from


def cmd_doctor(settings, args) -> int:
    from watcher.doctor import failed, run_checks

    checks = run_checks(settings, machine=True)
    if args.json:
        print(json.dumps({"ok": not failed(checks), "checks": [c.to_json() for c in checks]}, indent=2))
    else:
        where, how = config_path(args)
        if where is None:
            print("config: none (defaults; `watcher init` writes one)")
        else:
            found = " (found in the working folder)" if how == "working folder" else ""
            print(f"config: {Path(where).resolve()}{found}")
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
    """``watcher demo``: needs no configuration (it builds its own, on a temporary database).

    Its language is ``--locale``, else the config's ``alerts.locale``: a French team that set
    ``locale = "fr"`` must see the demo in French without knowing the flag. The config is only
    read for that; a broken one is reported like for any command, not ignored.
    """
    from watcher.demo import run_from_args

    if args.locale is None:
        args.locale = "en"
        if config_path(args)[0] is not None:
            from watcher.config import ConfigError

            try:
                args.locale = settings_from(args).alerts.locale
            except ConfigError as e:
                print(f"watcher: {e}", file=sys.stderr)
                return EXIT_CONFIG
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
