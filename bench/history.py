"""Does a year of history slow the present? p50/p95 of the board, the API, /metrics and `watcher status`.

Builds two SQLite databases for the same 50 vendors (two sources each): an empty one, and one
holding what a year-old instance holds after retention (its defaults: observations 30 days,
outbox rows 180 days, incidents and their events for good):

- observations at the default poll interval (one per source per --obs-every seconds) for the
  last 30 days,
- --incidents incidents spread over the year (a few still open), each with its keys and
  --updates vendor updates, written through the store as the pipeline writes them,
- three outbox rows (opened, updated, resolved; delivered) per incident of the last 180 days.

Then serves the web app in-process (the routes the daemon serves, through Starlette's test
client: no socket, so the figures are the handler's) and times each page --requests times on
each database, and `watcher status` (in-process, its output discarded).

    python bench/history.py                       # about 2 minutes
    python bench/history.py --obs-every 600       # a lighter database

Target (issue 18): p95 under 100 ms for each page with a year of history. Prints plain lines,
then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VENDORS = 50


def config(tmp: Path, db: Path) -> Path:
    lines = [f'[storage]\npath = "{db}"', "[web]", "enabled = true", "port = 0"]
    ids = []
    for i in range(VENDORS):
        vid = f"v{i:02d}"
        ids.append(vid)
        lines += [f"[vendors.{vid}]", f'name = "Vendor {i}"']
        lines += [
            f"[vendors.{vid}.sources.summary]",
            'type = "statuspage"',
            f'url = "http://127.0.0.1:9/{vid}.json"',
        ]
        lines += [
            f"[vendors.{vid}.sources.history]",
            'type = "feed"',
            f'url = "http://127.0.0.1:9/{vid}.rss"',
        ]
    lines += ["[[routes]]", 'slack_channels = ["C0123456789"]']
    cfg = tmp / f"{db.stem}.toml"
    cfg.write_text(f"watch = {json.dumps(ids)}\n" + "\n".join(lines) + "\n")
    return cfg


def build(settings, vendors, args, now: datetime) -> dict:
    """Fill the store with a year of history. Returns counts."""
    from watcher.alerts.engine import AlertEngine
    from watcher.alerts.model import AlertAction
    from watcher.incidents.model import EventType, Incident, IncidentEvent, IncidentState
    from watcher.model import IncidentKind, IncidentStatus
    from watcher.store import open_store
    from watcher.store.base import SourceRecord
    from watcher.store.lite import to_text

    store = open_store(settings)
    rng = random.Random(18)
    counts = {"observations": 0, "incidents": 0, "events": 0, "notifications": 0}
    summary = {
        "indicator": "none",
        "page": "Vendor",
        "components": {f"Component {c}": "operational" for c in range(12)},
        "maintenance_in_progress": [],
        "filtered_worst": None,
    }
    for v in vendors:
        for s in v.sources:
            store.save_source(
                SourceRecord(
                    s.key,
                    v.id,
                    s.type,
                    s.url,
                    last_polled_at=now,
                    last_success_at=now,
                    last_change_at=now,
                    content_hash="x",
                    summary=summary,
                    polls=1,
                )
            )
    # observations: the retained window, at the poll interval
    start = now - timedelta(days=30)
    step = timedelta(seconds=args.obs_every)
    data = json.dumps(summary)
    batch = []
    with store.transaction("observations") as db:  # the transaction's own connection (SQLite)
        t = start
        while t < now:
            at = t.isoformat(timespec="seconds")
            for v in vendors:
                for s in v.sources:
                    batch.append((s.key, v.id, at, "snapshot", data))
            if len(batch) >= 50_000:
                db.executemany(
                    "INSERT INTO observations (source, vendor, at, kind, data) VALUES (?,?,?,?,?)", batch
                )
                counts["observations"] += len(batch)
                batch.clear()
            t += step
        if batch:
            db.executemany(
                "INSERT INTO observations (source, vendor, at, kind, data) VALUES (?,?,?,?,?)", batch
            )
            counts["observations"] += len(batch)
    # incidents over the year, through the store
    engine = AlertEngine(settings, store, vendors, clock=lambda: now)
    template = None
    kinds = [IncidentKind.OUTAGE, IncidentKind.DEGRADATION, IncidentKind.API_CHANGE, IncidentKind.MAINTENANCE]
    with store.transaction("incidents") as db:
        for n in range(args.incidents):
            v = vendors[n % len(vendors)]
            opened = now - timedelta(seconds=rng.uniform(3600, 365 * 86400))
            is_open = n >= args.incidents - 5
            kind = rng.choice(kinds)
            inc = Incident(
                id=None,
                vendor=v.id,
                title=f"Elevated errors on {v.name} API #{n}",
                kind=kind,
                reason="vendor says: errors",
                state=IncidentState.OPEN if is_open else IncidentState.RESOLVED,
                status=IncidentStatus.INVESTIGATING if is_open else IncidentStatus.RESOLVED,
                impact="major",
                opened_at=opened,
                updated_at=opened + timedelta(hours=1),
                started_at=opened,
                resolved_at=None if is_open else opened + timedelta(hours=2),
                components=["Component 1", "Component 2"],
                is_maintenance=kind is IncidentKind.MAINTENANCE,
            )
            inc.keys.add(f"sp:{v.id}:{n}")
            events = [IncidentEvent(EventType.OPENED, opened, "opened")]
            for u in range(args.updates):
                events.append(
                    IncidentEvent(
                        EventType.VENDOR_UPDATE,
                        opened + timedelta(minutes=10 * (u + 1)),
                        f"Update {u}: we are looking into elevated error rates. " * 4,
                        status="investigating",
                        source=f"{v.id}:summary",
                        dedupe=f"u{n}:{u}",
                    )
                )
            if not is_open:
                events.append(IncidentEvent(EventType.RESOLVED, opened + timedelta(hours=2), "resolved"))
            store.save_incident(inc, events)
            counts["incidents"] += 1
            counts["events"] += len(events)
            if opened > now - timedelta(days=180):
                if template is None:
                    engine.notify(inc, AlertAction.OPENED, event_text="opened")
                    template = db.execute("SELECT * FROM notifications ORDER BY id LIMIT 1").fetchone()
                    cols = [d[0] for d in db.execute("SELECT * FROM notifications LIMIT 0").description]
                    counts["notifications"] += 1
                    continue
                row = dict(template) if isinstance(template, dict) else dict(zip(cols, template, strict=True))
                for action in ("opened", "updated", "resolved"):
                    r = {**row, "incident_id": inc.id, "action": action}
                    r.pop("id")
                    if "state" in r:
                        r["state"] = "delivered"
                    r = {k: to_text(x) if isinstance(x, datetime) else x for k, x in r.items()}
                    for k in ("created_at", "not_before", "sent_at", "updated_at"):
                        if k in r and r[k]:
                            r[k] = opened.isoformat(timespec="seconds")
                    keys = list(r)
                    db.execute(
                        f"INSERT INTO notifications ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})",
                        list(r.values()),
                    )
                    counts["notifications"] += 1
    open_ids = [i.id for i in store.open_incidents()]
    some = [i.id for i in store.incidents(limit=50)]
    store.close()
    return {**counts, "open_ids": open_ids, "some_ids": some}


def existing(settings) -> dict:
    """The counts and incident ids of a database built by an earlier run (--keep)."""
    from watcher.store import open_store

    store = open_store(settings)
    counts: dict = {
        t: int(store.run("count", lambda c, t=t: c.execute(f"SELECT COUNT(*) AS n FROM {t}").fetchone()["n"]))
        for t in ("observations", "incidents", "incident_events", "notifications")
    }
    counts["events"] = counts.pop("incident_events")
    counts["open_ids"] = [i.id for i in store.open_incidents()]
    counts["some_ids"] = [i.id for i in store.incidents(limit=50)]
    store.close()
    return counts


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))] if v else float("nan")


def measure(cfg: Path, ids: list[int], requests: int) -> dict[str, tuple[float, float]]:
    from starlette.testclient import TestClient

    from watcher import cli
    from watcher.alerts.engine import AlertEngine
    from watcher.catalog import resolve
    from watcher.config import load_settings
    from watcher.daemon import web_modules
    from watcher.store import open_store
    from watcher.web.app import create_app
    from watcher.web.context import WebContext

    settings = load_settings(cfg)
    vendors = resolve(settings)
    store = open_store(settings)
    engine = AlertEngine(settings, store, vendors)
    ctx = WebContext(settings=settings, store=store, vendors=vendors, engine=engine, runtime={"polls": 0})
    routes, middleware = web_modules(ctx)
    app = create_app(
        engine, signing_secret=None, ack_secret=engine.ack_secret, extra_routes=routes, middleware=middleware
    )
    pages = {
        "GET /": lambda i: "/",
        "GET /incidents/<id>": lambda i: f"/incidents/{ids[i % len(ids)]}" if ids else "/",
        "GET /api/v1/incidents": lambda i: "/api/v1/incidents",
        "GET /api/v1/vendors": lambda i: "/api/v1/vendors",
        "GET /metrics": lambda i: "/metrics",
    }
    out: dict[str, tuple[float, float]] = {}
    with TestClient(app, base_url="http://127.0.0.1") as http:
        for name, path in pages.items():
            times = []
            for i in range(requests + 3):
                t = time.perf_counter()
                r = http.get(path(i))
                dt = time.perf_counter() - t
                if r.status_code != 200:
                    raise SystemExit(f"{name}: HTTP {r.status_code}: {r.text[:300]}")
                if i >= 3:  # the first requests warm caches and imports
                    times.append(dt * 1000)
            out[name] = (pct(times, 0.5), pct(times, 0.95))
    store.close()
    times = []
    for i in range(max(5, requests // 5) + 1):
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(["status", "--config", str(cfg)])
        if rc != 0:
            raise SystemExit(f"watcher status exited {rc}")
        if i:
            times.append((time.perf_counter() - t) * 1000)
    out["watcher status"] = (pct(times, 0.5), pct(times, 0.95))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--incidents", type=int, default=5000, help="incidents over the year (all vendors)")
    ap.add_argument("--updates", type=int, default=6, help="vendor updates per incident")
    ap.add_argument("--obs-every", type=float, default=60.0, help="seconds between observations of a source")
    ap.add_argument("--requests", type=int, default=60, help="requests per page")
    ap.add_argument(
        "--keep",
        type=Path,
        help="build the databases in this folder and keep them; reuse them when already there "
        "(measure before and after a change on the same year, migrated in place)",
    )
    args = ap.parse_args()
    for k in [k for k in os.environ if k.startswith("WATCHER_")]:
        del os.environ[k]
    from watcher.catalog import resolve
    from watcher.config import load_settings

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="watcher-history-"))
    tmp.mkdir(parents=True, exist_ok=True)
    reuse = args.keep is not None and (tmp / "year.db").exists()
    now = datetime.now(UTC).replace(microsecond=0)
    empty_cfg, full_cfg = config(tmp, tmp / "empty.db"), config(tmp, tmp / "year.db")
    for cfg in (empty_cfg, full_cfg):
        settings = load_settings(cfg)
        vendors = resolve(settings)
        t = time.monotonic()
        if cfg is full_cfg and reuse:
            counts = existing(settings)
            print(f"reusing {tmp / 'year.db'}: {counts}")
        elif cfg is full_cfg:
            counts = build(settings, vendors, args, now)
            print(
                f"built a year of history in {time.monotonic() - t:.0f} s: {counts['observations']:,} observations, "
                f"{counts['incidents']:,} incidents, {counts['events']:,} events, "
                f"{counts['notifications']:,} outbox rows; {(tmp / 'year.db').stat().st_size / 2**20:.0f} MB"
            )
        else:
            from watcher.store import open_store

            open_store(settings).close()
    empty = measure(empty_cfg, [], args.requests)
    full = measure(full_cfg, counts["some_ids"] + counts["open_ids"], args.requests)
    missed = []
    print(f"machine: {os.cpu_count()} cores; {args.requests} requests per page; in-process, no socket")
    print(f"{'page':<22} {'empty p50/p95 ms':>18} {'year p50/p95 ms':>18}")
    for name in full:
        e, f = empty[name], full[name]
        ok = f[1] < 100
        if not ok:
            missed.append(name)
        print(f"{name:<22} {e[0]:>8.1f} {e[1]:>8.1f} {f[0]:>8.1f} {f[1]:>8.1f}  {'MET' if ok else 'MISSED'}")
    print(
        json.dumps(
            {
                "bench": "history",
                "empty": {k: [round(x, 1) for x in v] for k, v in empty.items()},
                "year": {k: [round(x, 1) for x in v] for k, v in full.items()},
                "counts": {k: v for k, v in counts.items() if not k.endswith("_ids")},
                "missed": missed,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
