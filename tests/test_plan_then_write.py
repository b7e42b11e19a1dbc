"""Plan, then write: nothing slow about an alert runs while the incident's write transaction is open.

The alert of a new outage needs the other vendors' state and probe latencies
(store reads), the playbook (a packaged template, the team's overrides) and the
prompt library scan (up to 500 files). All of it must happen before
``store.transaction(...)`` opens, because SQLite's write lock is held for as
long as it is open. Inside, only ids, links and rows are written.

How it is watched, with real objects only: the real SQLite store wrapped so that
its ``transaction`` says when one is open and the reads the plan does are logged
with that flag; and a Python audit hook (``sys.addaudithook``) that sees every
file the process opens or lists, so a prompt-library scan or a playbook template
read inside the transaction is caught wherever it comes from. A control shows
the watch catches the old way (building the alert inside a transaction).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alerting import AlertHarness

from watcher.alerts.engine import AlertEngine
from watcher.alerts.model import AlertAction
from watcher.fetch import make_client
from watcher.pipeline import Pipeline

PLANNED_READS = ("probe_results", "sources", "open_incidents", "active_mutes", "subscriptions_for", "alerted_targets")
"""Store reads the alert's plan makes (other vendors' state and latency, mutes, routing)."""


class WatchedStore:
    """The real store; says whether a transaction is open, and logs the plan's reads with that flag."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.depth = 0
        self.reads: list[tuple[str, bool]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in PLANNED_READS or not callable(attr):
            return attr

        def read(*args: Any, **kw: Any) -> Any:
            self.reads.append((name, self.depth > 0))
            return attr(*args, **kw)

        return read

    @contextmanager
    def transaction(self, what: str) -> Iterator[None]:
        with self._inner.transaction(what):
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1


class FileWatch:
    """Files opened or listed under the watched folders, each with whether a transaction was open."""

    current: FileWatch | None = None
    hooked = False

    def __init__(self, store: WatchedStore, folders: list[Path]):
        self.store = store
        self.folders = [str(f) for f in folders]
        self.seen: list[tuple[str, bool]] = []

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        watch = cls.current
        if watch is None or event not in ("open", "os.scandir", "os.listdir") or not args:
            return
        path = args[0]
        if isinstance(path, bytes | str | Path) and any(str(path).startswith(f) for f in watch.folders):
            watch.seen.append((str(path), watch.store.depth > 0))

    def __enter__(self) -> FileWatch:
        if not FileWatch.hooked:  # an audit hook cannot be removed: one for the session, off when unused
            sys.addaudithook(FileWatch._hook)
            FileWatch.hooked = True
        FileWatch.current = self
        return self

    def __exit__(self, *exc: object) -> None:
        FileWatch.current = None


@pytest.fixture
def library(tmp_path) -> Path:
    lib = tmp_path / "prompts"
    for name, first in {
        "blog/long-form_draft.md": "Turn an outline into a first draft",
        "ad-copy.txt": "Five headline variants",
        "social/linkedin.md": "LinkedIn captions",
    }.items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        (lib / name).write_text(first + "\n", encoding="utf-8")
    return lib.resolve()


def test_the_alert_is_planned_before_the_incident_transaction_and_only_written_inside(
    vendor_server, tmp_path, library
):
    playbooks = Path(__import__("watcher").__file__).resolve().parent / "locales"
    h = AlertHarness(vendor_server, tmp_path, {"alerts": {"prompt_library": str(library)}})
    try:
        store = WatchedStore(h.store)
        engine = AlertEngine(h.settings, store, h.vendors, clock=h.clock)
        spec = next(s for v in h.vendors if v.id == "anthropic" for s in v.sources if s.id == "summary")
        h.outage()

        async def poll():
            async with make_client(user_agent="test") as client:
                pipe = Pipeline(store, client, h.settings, h.vendors, clock=h.clock, plan_alerts=engine.plan)
                return await pipe.poll(spec)

        with FileWatch(store, [library, playbooks]) as files:
            result = asyncio.run(poll())

        # the alert was queued, with the slow parts in it: the playbook and the prompt library's files
        [inc] = [c.incident for c in result.changes]
        rows = h.rows()
        assert rows and {r.incident_id for r in rows} == {inc.id}
        alert = rows[0].alert
        assert alert.incident_id == inc.id and alert.incident_url.endswith(f"/incidents/{inc.id}")
        assert alert.ack_url and "ad-copy.txt" in alert.playbook
        assert any(a.vendor == "openai" for a in alert.alternatives)

        # ... and all of it ran before the transaction opened
        assert store.reads and files.seen, "the watch saw the plan's reads and file scans"
        assert [name for name, in_tx in store.reads if in_tx] == []
        assert [path for path, in_tx in files.seen if in_tx] == []
        assert any(path.startswith(str(library)) for path, _ in files.seen), "the library was scanned"

        # control: building the alert inside a transaction, the old way, is caught by the same watch
        store.reads.clear()
        with FileWatch(store, [library, playbooks]) as files, store.transaction("the old way"):
            engine.build_alert(inc, AlertAction.UPDATED)
        assert any(in_tx for _, in_tx in store.reads)
        assert any(in_tx and path.startswith(str(library)) for path, in_tx in files.seen)
    finally:
        h.close()
