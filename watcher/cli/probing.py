"""Commands for watcher's own probes of vendor APIs: probe (one round, printed) and baseline.

Apart because they spend API credits and speak to vendors with the team's keys: run by hand, to see
what the probes see before trusting their alarms.
"""

from __future__ import annotations

import json
import sys

from watcher.cli.common import EXIT_CONFIG, EXIT_OK, alert_engine, open_store_or_exit, print_table


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
    store = open_store_or_exit(settings)

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
            # plan, then write, as the daemon: the alert's slow part (routing, playbook, the prompt
            # library, the other vendors' state) runs before the transaction that saves the incident,
            # and its rows are queued inside it (Pipeline.apply); the service has nothing left to do
            engine = alert_engine(settings, store)
            pipeline = Pipeline(store, client, settings, vendors, lease=lease, plan_alerts=engine.plan)
            service = ProbeService(runner, pipeline, _queued_by_the_pipeline)
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


def _queued_by_the_pipeline(changes) -> None:
    """The probe service's hook: nothing to do, the pipeline's ``plan_alerts`` queued the alerts."""


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
    print_table(["REQUEST", "TTFT", "TOTAL", "RESULT"], rows)
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

    store = open_store_or_exit(settings, create=False)
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
    print_table(["VENDOR", "STREAM", "STATE", "LEVEL", "WHAT IT SEES"], rows)
    return EXIT_OK
