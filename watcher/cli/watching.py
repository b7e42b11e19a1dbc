"""Commands that watch and report what is watched: run, cluster, check, status, incidents, show, health.

They read the store the daemon writes (``check --once`` polls itself) and print a table, or one JSON
document with ``--json``; a group of its own because they are what an operator runs every day.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from watcher.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    age_words,
    incident_duration,
    open_store_or_exit,
    print_statuses,
    print_table,
    setup_logging,
    state_words,
    vendor_statuses,
)


def cmd_run(settings, args) -> int:
    import asyncio

    from watcher.catalog import resolve
    from watcher.daemon import Daemon
    from watcher.store import StoreError

    setup_logging(settings.log.level, args.log_format or settings.log.format)
    vendors = resolve(settings)
    import logging

    from watcher.doctor import summary, targets

    log = logging.getLogger("watcher.run")
    lines = summary(settings, vendors)
    for line in lines:
        log.log(logging.INFO if targets(settings) or "WARNING" not in line else logging.WARNING, "%s", line)
    store = open_store_or_exit(settings)
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

    store = open_store_or_exit(settings, create=False)
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
    local: list[dict[str, Any]] = [  # JSON rows
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

    setup_logging("error" if args.json else "warning")
    logging.getLogger("watcher.pipeline").setLevel(logging.ERROR)
    vendors = resolve(settings)
    store = open_store_or_exit(settings)
    try:
        asyncio.run(poll_all_once(settings, vendors, store))
        statuses = vendor_statuses(settings, store, vendors)
    finally:
        store.close()
    print_statuses(statuses, args.json)
    return EXIT_OK


def cmd_status(settings, args) -> int:
    from watcher.catalog import resolve

    vendors = resolve(settings)
    store = open_store_or_exit(settings, create=False)
    try:
        statuses = vendor_statuses(settings, store, vendors)
        budgets = _probe_budgets(settings, store, vendors)
    finally:
        store.close()
    from watcher.doctor import database_label

    database = database_label(settings)
    if args.json:
        print_statuses(statuses, True, {"database": database, "probe_budgets": budgets})
        return EXIT_OK
    print_statuses(statuses, False)
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

    store = open_store_or_exit(settings, create=False)
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
            state_words(i),
            age_words(now, i.started_at or i.opened_at),
            incident_duration(i),
            i.title,
        ]
        for i in rows
    ]
    print_table(["ID", "VENDOR", "KIND", "STATE", "STARTED", "LASTED", "TITLE"], table)
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
    from watcher.health import silence_limit, silence_reason

    specs = [spec for v in resolve(settings) for spec in v.sources]
    by_key = {r.key: r for r in records}
    watched: list[Any]
    intervals: list[float]
    if not any(s.key in by_key for s in specs):  # a database of other sources: judge what it holds
        watched, intervals = records, [settings.poll.interval] * len(records)
    else:
        watched, intervals = [by_key.get(s.key) for s in specs], [s.interval for s in specs]
    polled = [r.last_polled_at for r in watched if r and r.last_polled_at]
    # the same limit as /healthz: a few intervals of the fastest source (watcher.health.silence_limit)
    max_age = args.max_age if args.max_age is not None else silence_limit(intervals)
    if not polled:
        print("unhealthy: nothing polled yet", file=sys.stderr)
        return EXIT_FAIL
    now = datetime.now(UTC)
    age = (now - max(polled)).total_seconds()
    if age > max_age:
        print(f"unhealthy: last poll {age:.0f}s ago (limit {max_age:.0f}s)", file=sys.stderr)
        return EXIT_FAIL
    # polled is not enough: a watcher whose every poll fails (no network, DNS, proxy) sees nothing
    silent = silence_reason(now, watched, intervals, limit=max_age)
    if silent:
        print(f"unhealthy: {silent}", file=sys.stderr)
        return EXIT_FAIL
    # answering: polled, and its last poll worked (a source not polled yet is not answering)
    n_ok = sum(1 for r in watched if r and r.last_success_at and not r.error)
    ever = any(r and r.last_success_at for r in watched)
    when = "right now" if ever else "yet"
    wait = "" if n_ok else f" (none {when}: unhealthy once every source is silent for {max_age:.0f}s)"
    print(f"healthy: last poll {age:.0f}s ago; {n_ok} of {len(watched)} sources answering{wait}")
    return EXIT_OK


def cmd_show(settings, args) -> int:
    from watcher.status import incident_json

    store = open_store_or_exit(settings, create=False)
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
    print(f"  state:  {state_words(inc)}; vendor status {inc.status}; impact {inc.impact or '-'}")
    if inc.components:
        print(f"  components: {', '.join(inc.components)}")
    if inc.url:
        print(f"  link:   {inc.url}")
    print("  timeline:")
    for e in events:
        text = " ".join(e.event.text.split())
        print(f"    {e.event.at:%Y-%m-%d %H:%M}Z  {e.event.type:<18} {text[:200]}")
    return EXIT_OK
