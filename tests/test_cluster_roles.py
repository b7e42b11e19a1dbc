"""Who does what in a cluster: followers watch without merging, a new leader catches up, and a
probe outage needs more than one location.

The role tests use the real PostgreSQL (fresh schema), real leader leases and a real HTTP
status page on 127.0.0.1; the confirmation rule is a pure function, tested on its own.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import scenario
import store_backends

from watcher.catalog import resolve
from watcher.config import Settings
from watcher.fetch import make_client
from watcher.pipeline import Pipeline
from watcher.probes.service import Sighting, confirmation, sightings

pg_url = store_backends.pg_url
NOW = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


def _settings(server) -> Settings:
    return Settings.model_validate(
        {
            "watch": ["anthropic"],
            "vendors": {
                "anthropic": {
                    "sources": {
                        "summary": {"url": server.url("/api/v2/summary.json")},
                        "incidents": {"enabled": False},
                        "maintenances": {"enabled": False},
                        "history": {"enabled": False},
                    }
                }
            },
        }
    )


def _poll(store, lease, settings, vendors):
    spec = next(s for s in vendors[0].sources if s.id == "summary")

    async def go():
        async with make_client(user_agent="test") as client:
            return await Pipeline(store, client, settings, vendors, lease=lease).poll(spec)

    return asyncio.run(go())


def test_a_follower_records_what_it_sees_but_only_the_leader_opens_incidents(vendor_server, pg_url):
    from watcher.store.leader import LeaderLease
    from watcher.store.postgres import PostgresStore

    settings = _settings(vendor_server)
    vendors = resolve(settings)
    vendor_server.set(
        "/api/v2/summary.json",
        scenario.incident(("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z")),
    )
    paris, virginia = PostgresStore(pg_url, location="paris"), PostgresStore(pg_url, location="virginia")
    a, b = LeaderLease(pg_url, "a", "paris", timeout=6), LeaderLease(pg_url, "b", "virginia", timeout=6)
    try:
        assert a.tick() and not b.tick()
        result = _poll(virginia, b, settings, vendors)
        assert result.observation.ok and result.changes == []
        assert virginia.incidents() == [], "a follower merged into the cluster's incidents"
        seen = virginia.source("anthropic/summary")
        assert seen is not None and seen.content_hash and seen.summary["indicator"] == "critical"
        assert paris.source("anthropic/summary") is None, "each location keeps its own fetch state"

        result = _poll(paris, a, settings, vendors)
        [inc] = paris.open_incidents("anthropic")
        assert [c.incident.id for c in result.changes] == [inc.id]
        assert len(paris.sources()) == len(virginia.sources()) == 1
    finally:
        for x in (a, b):
            x.close()
        paris.close()
        virginia.close()


def test_a_new_leader_merges_a_page_it_had_already_seen_as_a_follower(vendor_server, pg_url):
    """Its stored hash says "unchanged", but nothing it saw as a follower was merged: it must not skip."""
    from watcher.store.leader import LeaderLease
    from watcher.store.postgres import PostgresStore

    settings = _settings(vendor_server)
    vendors = resolve(settings)
    path = "/api/v2/summary.json"
    vendor_server.set(path, scenario.operational())
    paris, virginia = PostgresStore(pg_url, location="paris"), PostgresStore(pg_url, location="virginia")
    a, b = LeaderLease(pg_url, "a", "paris", timeout=6), LeaderLease(pg_url, "b", "virginia", timeout=6)
    try:
        assert a.tick() and not b.tick()
        _poll(paris, a, settings, vendors)
        _poll(virginia, b, settings, vendors)
        vendor_server.set(
            path, scenario.incident(("investigating", "Claude API is down.", "2026-10-07T13:01:00Z"))
        )
        _poll(virginia, b, settings, vendors)  # the follower sees the outage first; the leader dies
        assert virginia.incidents() == []
        a.close()
        assert b.tick(), "the follower takes the lease once the leader's session is gone"
        before = vendor_server.conditional_hits[path]
        result = _poll(virginia, b, settings, vendors)
        [inc] = virginia.open_incidents("anthropic")
        assert [c.incident.id for c in result.changes] == [inc.id]
        assert vendor_server.conditional_hits[path] == before, "the catch-up poll fetched in full"
        again = _poll(virginia, b, settings, vendors)
        assert again.changes == [] and len(virginia.incidents()) == 1, "and once caught up, it is a normal poll"
    finally:
        for x in (a, b):
            x.close()
        paris.close()
        virginia.close()


# -- confirmation across locations ------------------------------------------------------------------


def _seen(location: str, outage: bool, ago: float = 10) -> Sighting:
    return Sighting(location, NOW - timedelta(seconds=ago), outage, NOW - timedelta(minutes=5) if outage else None)


def test_an_outage_seen_from_one_location_of_three_is_that_locations_problem():
    conf = confirmation(
        [_seen("paris", True), _seen("frankfurt", False), _seen("virginia", False)],
        NOW,
        window=60,
        min_locations=None
    )
    assert not conf.confirmed and conf.needed == 2 and conf.local == ("paris",)


def test_an_outage_seen_from_two_locations_is_declared():
    conf = confirmation(
        [_seen("paris", True), _seen("frankfurt", True), _seen("virginia", False)],
        NOW,
        window=60,
        min_locations=None
    )
    assert conf.confirmed and conf.local == ()
    assert conf.explain() == "not answering from 2 of 3 locations (frankfurt, paris)"


def test_a_sighting_older_than_the_window_does_not_count():
    conf = confirmation(
        [_seen("paris", True), _seen("frankfurt", False), _seen("virginia", True, ago=120)],
        NOW,
        window=60,
        min_locations=None,
    )
    assert not conf.confirmed and conf.locations == ("frankfurt", "paris") and conf.local == ("paris",)


def test_a_location_with_no_opinion_does_not_hold_back_an_outage_the_others_see():
    """Blind (its network down) or dead, a location says nothing about the vendor: the outage is
    local only when another location sees the API answer."""
    blind = [_seen("paris", True), _seen("frankfurt", True, ago=500)]
    assert confirmation(blind, NOW, window=60, min_locations=None).confirmed
    states = {
        "probe:openai@paris": {"seen": {"at": NOW.isoformat(), "network_ok": True}, "outage": {"alarm": True}},
        "probe:openai@frankfurt": {"seen": {"at": NOW.isoformat(), "network_ok": False}, "outage": {}},
    }
    assert confirmation(sightings(states, "openai"), NOW, window=60, min_locations=None).confirmed


def test_alone_one_location_is_enough_and_a_shrunk_cluster_does_not_go_blind():
    assert confirmation([_seen("paris", True)], NOW, window=60, min_locations=None).confirmed
    shrunk = confirmation([_seen("paris", True)], NOW, window=60, min_locations=3)
    assert shrunk.confirmed and shrunk.needed == 1
    strict = confirmation(
        [_seen("paris", True), _seen("frankfurt", True), _seen("virginia", False)],
        NOW,
        window=60,
        min_locations=3
    )
    assert not strict.confirmed and strict.needed == 3


def test_sightings_read_each_locations_detector_state_and_an_offline_location_has_no_opinion():
    at = NOW.isoformat()
    states = {
        "probe:openai@paris": {"seen": {"at": at, "network_ok": True}, "outage": {"alarm": True}},
        "probe:openai@frankfurt": {"seen": {"at": at, "network_ok": False}, "outage": {"alarm": True}},
        "probe:openai@virginia": {"seen": {"at": at, "network_ok": True}, "outage": {"alarm": False}},
        "probe:openai-eu@paris": {"seen": {"at": at, "network_ok": True}, "outage": {"alarm": True}},
        "probe:openai": {"outage": {"alarm": True}},
    }
    got = {(s.location, s.outage, s.network_ok) for s in sightings(states, "openai")}
    assert got == {("paris", True, True), ("frankfurt", True, False), ("virginia", False, True)}
    everyone = {(s.vendor, s.location) for s in sightings(states)}
    assert everyone == {("openai", "paris"), ("openai", "frankfurt"), ("openai", "virginia"), ("openai-eu", "paris")}
    conf = confirmation(sightings(states, "openai"), NOW, window=60, min_locations=None)
    assert conf.locations == ("paris", "virginia") and not conf.confirmed, "frankfurt, offline, counted"


@pytest.mark.parametrize("bad", [{"seen": {"at": "yesterday"}}, {"seen": {}}, {}])
def test_an_unreadable_sighting_is_ignored(bad):
    assert sightings({"probe:openai@paris": bad}, "openai") == []


# -- a deposed leader writes nothing ------------------------------------------------------------------


def test_a_deposed_leader_cannot_commit_incidents_or_claim_alerts(pg_url):
    """Fencing: once another instance has taken the lease (a higher epoch), the old leader's
    transactions and outbox claims are refused, even if it has not noticed yet."""
    from test_store_backends import put, sample

    from watcher.store.base import StoreError
    from watcher.store.leader import LeaderLease
    from watcher.store.postgres import PostgresStore

    old, new = PostgresStore(pg_url, location="paris"), PostgresStore(pg_url, location="virginia")
    a = LeaderLease(pg_url, "a", "paris", timeout=6)
    b = LeaderLease(pg_url, "b", "virginia", timeout=6)
    try:
        assert a.tick()
        old.fence_epoch = a.epoch
        iid = old.save_incident(sample(title="Down"), [])
        nid = put(old, incident_id=iid)
        a.close()  # the lease goes; `old` still believes it leads
        assert b.tick()
        new.fence_epoch = b.epoch
        with pytest.raises(StoreError, match="no longer leads"):
            old.save_incident(sample(title="Down again", keys={"02DEF"}), [])
        assert not old.claim(nid, NOW), "a deposed leader claimed an alert"
        assert [i.title for i in new.incidents()] == ["Down"]
        assert new.claim(nid, NOW)
    finally:
        b.close()
        old.close()
        new.close()


def test_a_transaction_left_open_by_a_frozen_leader_is_ended_by_the_server(pg_url):
    """The store's transactions die after ``idle_transaction_timeout`` of silence, before the lease
    can change hands: a leader frozen mid-merge cannot commit when it wakes."""
    from watcher.store.base import StoreError
    from watcher.store.postgres import PostgresStore

    store = PostgresStore(pg_url, location="paris", idle_transaction_timeout=0.5)
    try:
        with pytest.raises(StoreError), store.transaction("save incidents and their alerts") as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('frozen', 'yes')")
            time.sleep(1.5)  # frozen: the server ends the idle transaction meanwhile
        assert store.meta_get("frozen") is None, "the frozen transaction committed"
    finally:
        store.close()
