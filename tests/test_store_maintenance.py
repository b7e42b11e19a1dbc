"""The store methods retention, the weekly report, ``/healthz``, ``/metrics`` and the board use,
run on both backends (SQLite on a file, PostgreSQL in a fresh schema: tests/store_backends.py).

Each test writes through the store's public methods and checks the same answer on
each backend; the modules that use these are tested end to end in test_retention,
test_report, test_ops and test_board.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import store_backends

from watcher.alerts.model import Alert, AlertAction
from watcher.incidents.model import Incident
from watcher.model import IncidentKind

backend, store = store_backends.backend, store_backends.store

NOW = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


def alert(iid: int) -> Alert:
    return Alert(
        incident_id=iid,
        vendor="openai",
        vendor_name="OpenAI",
        title="Down",
        kind="outage",
        reason="r",
        state="open",
        status="investigating",
        action=AlertAction.OPENED,
    )


def test_meta_values_counters_and_prefixes(store):
    assert store.meta_get("report.last_sent:slack:C1") is None
    store.meta_set("report.last_sent:slack:C1", "2026-10-07T13:00:00+00:00")
    store.meta_set("report.last_sent:slack:C1", "2026-10-14T13:00:00+00:00")
    assert store.meta_get("report.last_sent:slack:C1") == "2026-10-14T13:00:00+00:00"
    assert store.meta_add("retention.pruned.delivered.slack", 3) == 3
    assert store.meta_add("retention.pruned.delivered.slack", 4) == 7
    store.meta_set("RETENTION.pruned.x", "1")  # another case is another prefix
    store.meta_set("retention_pruned_y", "1")  # "_" and "%" are plain characters here
    assert store.meta_items("retention.pruned.") == {"retention.pruned.delivered.slack": "7"}


def test_probe_figures_for_the_report_and_the_metrics(store):
    rows = [
        # (minutes before NOW, ok, ttft, canary passed, tokens in, tokens out, cost)
        (5, True, 0.5, True, 10, 5, 0.001),
        (10, True, 0.3, False, 10, 5, 0.001),
        (20, True, 0.4, None, 20, 0, 0.002),
        (30, False, None, None, None, None, None),
        (60 * 30, True, 9.0, True, 1, 1, 0.5),  # the day before
    ]
    for minutes, ok, ttft, passed, t_in, t_out, cost in rows:
        store.add_probe_result(
            {
                "vendor": "openai",
                "kind": "chat",
                "at": NOW - timedelta(minutes=minutes),
                "ok": ok,
                "ttft_s": ttft,
                "passed": passed,
                "canary": "sum" if passed is not None else None,
                "tokens_in": t_in,
                "tokens_out": t_out,
                "cost": cost,
                "error_class": None if ok else "timeout",
                "network_ok": True,
            }
        )
    store.add_probe_result({"vendor": "anthropic", "kind": "chat", "at": NOW, "ok": True, "ttft_s": 7.0})
    day = NOW - timedelta(hours=24)
    assert store.probe_ttfts("openai", day) == [0.3, 0.4, 0.5]
    assert store.probe_ttfts("openai", day, NOW - timedelta(minutes=7)) == [0.3, 0.4]
    assert store.probe_ttfts("openai", NOW - timedelta(days=2), day) == [9.0]
    assert store.last_probe_ttft("openai") == 0.5
    assert store.last_probe_ttft("mistral") is None
    summary = store.probe_summary("openai", day)
    assert summary == {
        "requests": 4,
        "ok": 3,
        "failed": 1,
        "passed": 1,
        "wrong": 1,
        "answered": 2,
        "tokens": 50,
        "cost": pytest.approx(0.004),
    }
    assert store.probe_summary("openai", day, NOW - timedelta(minutes=25))["requests"] == 1  # the failure
    assert store.probe_summary("mistral", day)["requests"] == 0
    # the board's 24 hours: oldest first, in the same shape as probe_results() gives rows
    since = store.probe_results_since("openai", day)
    assert [r["ttft_s"] for r in since] == [None, 0.4, 0.3, 0.5]
    assert since[-1] == next(r for r in store.probe_results("openai") if r["id"] == since[-1]["id"])
    assert since[0]["ok"] == 0 and since[-1]["ok"] == 1 and since[-1]["network_ok"] == 1
    assert datetime.fromisoformat(since[-1]["at"]) == NOW - timedelta(minutes=5)


def test_outbox_counts_and_the_oldest_unsent_due(store):
    iid = store.save_incident(
        Incident(
            vendor="openai", title="Down", kind=IncidentKind.OUTAGE, reason="r", opened_at=NOW, updated_at=NOW
        ),
        [],
    )
    put = lambda target, at: store.enqueue(  # noqa: E731
        incident_id=iid,
        action=AlertAction.OPENED,
        channel="slack",
        target=target,
        route="r",
        alert=alert(iid),
        now=at,
    )
    a = put("C1", NOW - timedelta(minutes=30))
    store.claim(a, NOW)
    store.mark_retry(a, NOW, NOW, "boom")
    store.claim(a, NOW)
    store.mark_delivered(a, NOW)
    put("C2", NOW - timedelta(minutes=7))
    put("C3", NOW + timedelta(minutes=5))  # not due yet
    assert store.outbox_counts() == {("slack", "delivered"): (1, 2), ("slack", "pending"): (2, 0)}
    assert store.oldest_unsent_due(NOW) == NOW - timedelta(minutes=7)
    assert store.oldest_unsent_due(NOW - timedelta(hours=1)) is None


def test_prune_is_lazy_and_knows_only_the_prunable_tables(store):
    for days in (40, 35, 1):
        store.add_probe_result(
            {"vendor": "openai", "kind": "chat", "at": NOW - timedelta(days=days), "ok": True}
        )
    batches = store.prune("probe_results", NOW - timedelta(days=30), batch=1)
    assert store.size_stats()["rows"]["probe_results"] == 3, "nothing deleted before the first step"
    assert list(batches) == [1, 1]
    assert store.size_stats()["rows"]["probe_results"] == 1
    with pytest.raises(ValueError, match="cannot prune 'incidents'"):
        list(store.prune("incidents", NOW))
    # a few rows free too few pages for SQLite to rewrite the file; PostgreSQL leaves it to autovacuum
    assert list(store.compact()) == []
    store.optimize()


def test_health_write_really_writes_and_size_stats_count_rows(store, backend):
    store.health_write("healthz.checked_at", "2026-10-07T13:00:00+00:00", timeout=1)
    assert store.meta_get("healthz.checked_at") == "2026-10-07T13:00:00+00:00"
    stats = store.size_stats()
    assert stats["size_bytes"] > 0
    assert set(stats["rows"]) == {"observations", "probe_results", "notifications", "incidents"}
    assert (stats["free_bytes"] is None) == (backend.kind == "postgres")
