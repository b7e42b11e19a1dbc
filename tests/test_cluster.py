"""High availability on PostgreSQL (issue 6): three `watcher run` processes, one database, one leader.

Real processes (tests/cluster_harness.py), a real PostgreSQL (a fresh schema per test, see
tests/store_backends.py: skipped with the reason when unreachable, unless
TEST_POSTGRES_REQUIRED=1), real stand-ins on 127.0.0.1: status pages (vendor_server), Slack
(slack_server), LLM APIs (llm_server). Intervals are short (polls every 1 s, probes every 1 s,
failover_timeout 6 s). Each test states what it proves.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

import pytest
import scenario
import store_backends
from cluster_harness import INSTANCES, Cluster
from daemon_harness import free_port
from test_faults import storm_config, storm_down, storm_tally

pg_url = store_backends.pg_url  # the fixture: a fresh PostgreSQL schema (skips when there is none)

CHANNEL = "C0STORM"
"""The channel storm_config routes every alert to."""
FAILOVER_TIMEOUT = 6


@pytest.fixture
def make_cluster(tmp_path, pg_url):
    """``make_cluster(config, **kw)``: a :class:`Cluster` on this test's schema; every process it
    started is stopped (SIGTERM, then SIGKILL) at teardown, before the schema is dropped."""
    made: list[Cluster] = []

    def make(config, **kw) -> Cluster:
        kw.setdefault("failover_timeout", FAILOVER_TIMEOUT)
        c = Cluster(tmp_path, pg_url, config, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def formed(c: Cluster, names=None) -> tuple[str, int] | None:
    """(leader, epoch) once every instance in ``names`` heartbeats and one of them holds the lease."""
    names = set(names or c.running())
    rows = c.instances()
    if not names <= set(rows) or any(rows[n]["age"] is None or rows[n]["age"] > 3 for n in names):
        return None
    holder, epoch = c.leader()
    leaders = [n for n in names if rows[n]["is_leader"]]
    if holder not in names or leaders != [holder]:
        return None
    return holder, epoch


def roots(slack_server) -> list[str]:
    """The texts of the channel's top-level messages: one per incident when all is well."""
    return [m.text for m in slack_server.messages(CHANNEL)]


def senders(c: Cluster, *, last: bool = False) -> set[str]:
    """The instances whose log says they delivered a notification."""
    return {n for n in c.procs if re.search(r"notification #\d+ delivered", c.log(n, last=last))}


def assert_clean_logs(c: Cluster) -> None:
    for name in c.procs:
        assert "Traceback" not in c.log(name), f"{name}:\n{c.log(name)[-6000:]}"


def test_three_watchers_send_exactly_one_alert_per_incident_then_resolve_it(
    make_cluster, pg_url, tmp_path, vendor_server, slack_server
):
    """Proves: three instances (paris, frankfurt, virginia) all poll the same status pages, but each
    incident reaches Slack exactly once (one chat.postMessage, from the leader); its resolution
    edits that message; `watcher cluster --json` shows three live instances and one leader."""
    n = 3
    slack_server.add_channel(CHANNEL)
    cfg, _ = storm_config(tmp_path, vendor_server, slack_server, None, n, storage_url=pg_url, down=False)
    c = make_cluster(cfg.read_text(), env={"WATCHER_SLACK__TOKEN": slack_server.token})
    c.start_all()
    leader, epoch = c.wait(lambda: formed(c), timeout=40)
    c.wait(lambda: all(vendor_server.hits[f"/v{i}/summary.json"] >= 6 for i in range(n)))

    status = c.status()
    assert status["leader"] == leader and status["epoch"] == epoch
    by_name = {i["name"]: i for i in status["instances"]}
    assert set(by_name) == {"a", "b", "c"}
    assert {(i["name"], i["location"]) for i in status["instances"]} == set(INSTANCES)
    assert all(i["alive"] for i in status["instances"]), status
    assert [i["name"] for i in status["instances"] if i["is_leader"]] == [leader], status

    storm_down(vendor_server, n)
    c.wait(lambda: storm_tally(roots(slack_server), n)[0] == [], timeout=30)
    polls = sum(vendor_server.hits.values())
    c.wait(lambda: sum(vendor_server.hits.values()) >= polls + 3 * 3 * n)  # 3 more polls by each
    lost, duplicated = storm_tally(roots(slack_server), n)
    assert (lost, duplicated) == ([], 0), roots(slack_server)
    posts = [r for r in slack_server.calls("chat.postMessage") if not r.args.get("thread_ts")]
    assert len(posts) == n, f"{len(posts)} root posts for {n} incidents"

    for i in range(n):
        vendor_server.set(f"/v{i}/summary.json", scenario.operational())
    c.wait(
        lambda: all("Resolved" in m.all_text() for m in slack_server.messages(CHANNEL))
        and not c.sql("SELECT id FROM incidents WHERE state = 'open'"),
        timeout=30,
    )
    c.wait(lambda: c.unsent() == 0)
    assert len(slack_server.messages(CHANNEL)) == n
    assert c.outbox()["dead"] == 0, c.sql("SELECT * FROM notifications WHERE state = 'dead'")
    assert c.leader() == (leader, epoch), "nobody died: the lease never changed hands"
    assert senders(c) == {leader}, "only the leader sends"
    assert c.stop_all() == {"a": 0, "b": 0, "c": 0}, c.logs()
    assert_clean_logs(c)
    assert slack_server.token not in "".join(c.log(n) for n in c.procs)


def test_kill_9_of_the_leader_mid_storm_fails_over_in_time_and_loses_no_alert(
    make_cluster, pg_url, tmp_path, vendor_server, slack_server
):
    """Proves: SIGKILL of the leader while a 20-incident alert storm is being sent (Slack slowed
    to 0.25 s a call) is replaced by a follower within failover_timeout; every alert still reaches
    Slack (none lost) with at most one duplicate (the one send in flight at the kill); the killed
    instance, restarted at once (normally while the storm is still being sent), rejoins as a live
    follower that sends nothing, and the lease stays with the new leader."""
    n = 20
    slack_server.add_channel(CHANNEL)
    slack_server.slow("chat.postMessage", 0.25)
    cfg, _ = storm_config(tmp_path, vendor_server, slack_server, None, n, storage_url=pg_url, down=False)
    c = make_cluster(cfg.read_text(), env={"WATCHER_SLACK__TOKEN": slack_server.token})
    c.start_all()
    old, epoch = c.wait(lambda: formed(c), timeout=40)
    c.wait(lambda: all(vendor_server.hits[f"/v{i}/summary.json"] >= 3 for i in range(n)))

    storm_down(vendor_server, n)
    c.wait(lambda: len(roots(slack_server)) >= 4, timeout=30)
    in_flight = c.outbox()["sending"]
    wall = time.time()
    killed_at = c.kill(old)
    unsent_at_kill = c.unsent()
    new, new_epoch = c.wait(
        lambda: (lead := c.leader())[1] > epoch and lead, timeout=FAILOVER_TIMEOUT + 10, step=0.02
    )
    takeover = time.monotonic() - killed_at
    assert new in {"a", "b", "c"} - {old}
    assert new_epoch == epoch + 1
    c.wait(lambda: f"{new}: now the leader (epoch {new_epoch})" in c.log(new), timeout=5)

    c.start(old)  # back at once, normally while the new leader still sends: it must not re-queue those
    pid = c.procs[old].pid
    c.wait(lambda: (row := c.instances().get(old)) and row["pid"] == pid and row["age"] < 2)
    unsent_at_rejoin = c.unsent()
    c.wait(lambda: storm_tally(roots(slack_server), n)[0] == [] and c.unsent() == 0, timeout=60)
    lost, duplicated = storm_tally(roots(slack_server), n)
    first = min(
        (r.answered_at for r in slack_server.requests if r.at > wall and r.method.startswith("chat.") and r.status == 200),
        default=None,
    )
    print(
        f"\nkill -9 of leader {old} (epoch {epoch}) with {unsent_at_kill} alert(s) unsent, {in_flight} in flight: "
        f"{new} leads (epoch {new_epoch}) after {takeover:.2f} s; first alert accepted "
        f"{(first - wall) if first else float('nan'):.2f} s after the kill; "
        f"Slack {len(lost)} lost, {duplicated} duplicated; {old} rejoined with {unsent_at_rejoin} unsent"
    )
    assert unsent_at_kill > 0, "the storm was over before the kill: nothing tested"
    assert takeover <= FAILOVER_TIMEOUT + 1, f"takeover took {takeover:.2f} s"
    assert lost == [], f"alerts lost: {lost}\n{c.logs()}"
    assert duplicated <= 1, f"{duplicated} duplicates for one kill\n{c.logs()}"
    assert c.outbox()["dead"] == 0

    def rejoined():
        s = c.status()
        me = next((i for i in s["instances"] if i["name"] == old), None)
        return me is not None and me["alive"] and not me["is_leader"] and s["leader"] == new and s

    status = c.wait(rejoined, timeout=20)
    assert status["epoch"] == new_epoch
    assert sum(i["is_leader"] for i in status["instances"]) == 1, status
    assert {i["name"] for i in status["instances"] if i["alive"]} == {"a", "b", "c"}, status
    assert c.leader() == (new, new_epoch), "the restarted instance did not take the lease back"
    assert senders(c) <= {old, new}, "the instance that never led never sent"
    assert old not in senders(c, last=True), "the restarted instance, a follower, never sent"
    assert_clean_logs(c)


def test_a_hung_leader_is_replaced_within_failover_timeout_and_steps_down_when_it_wakes(
    make_cluster, pg_url, tmp_path, vendor_server, slack_server
):
    """Proves: a leader that stops without dying (SIGSTOP: a paused VM, a stuck process; its socket
    stays open) loses the lease when the server times its silent session out, and the follower
    takes over within failover_timeout; woken (SIGCONT) mid-storm, the old leader steps down and
    sends nothing more but the one send it was in the middle of; nothing is lost."""
    n = 12
    slack_server.add_channel(CHANNEL)
    slack_server.slow("chat.postMessage", 0.25)
    cfg, _ = storm_config(tmp_path, vendor_server, slack_server, None, n, storage_url=pg_url, down=False)
    c = make_cluster(cfg.read_text(), env={"WATCHER_SLACK__TOKEN": slack_server.token})
    c.start_all(INSTANCES[:2])
    old, epoch = c.wait(lambda: formed(c), timeout=40)
    c.wait(lambda: all(vendor_server.hits[f"/v{i}/summary.json"] >= 3 for i in range(n)))
    storm_down(vendor_server, n)
    c.wait(lambda: len(roots(slack_server)) >= 3, timeout=30)
    paused_at = time.monotonic()
    c.procs[old].send_signal(signal.SIGSTOP)
    try:
        new, new_epoch = c.wait(
            lambda: (lead := c.leader())[1] > epoch and lead, timeout=FAILOVER_TIMEOUT + 10, step=0.05
        )
        takeover = time.monotonic() - paused_at
        sent = len(roots(slack_server))
        c.wait(lambda: len(roots(slack_server)) >= sent + 2, timeout=20)  # the new leader sends
    finally:
        mark = len(c.log(old))
        c.procs[old].send_signal(signal.SIGCONT)
    c.wait(lambda: "no longer the leader" in c.log(old)[mark:], timeout=20)
    c.wait(lambda: storm_tally(roots(slack_server), n)[0] == [] and c.unsent() == 0, timeout=60)
    lost, duplicated = storm_tally(roots(slack_server), n)
    woke = c.log(old)[mark:]
    print(
        f"\nSIGSTOP of leader {old}: {new} leads after {takeover:.2f} s; woken, {old} sent "
        f"{len(re.findall('delivered', woke))} more; Slack {len(lost)} lost, {duplicated} duplicated"
    )
    assert takeover <= FAILOVER_TIMEOUT + 1, f"takeover took {takeover:.2f} s"
    assert len(re.findall(r"notification #\d+ delivered", woke)) <= 1, woke
    assert lost == [], f"alerts lost: {lost}\n{c.logs()}"
    assert duplicated <= 1, f"{duplicated} duplicates\n{c.logs()}"
    status = c.status()
    assert status["leader"] == new and status["epoch"] == new_epoch, status
    assert [(i["name"], i["alive"], i["is_leader"]) for i in status["instances"] if i["name"] == old] == [
        (old, True, False)
    ], status
    assert_clean_logs(c)


def probe_config(pg_url: str, slack_server, vendor_server, base_url) -> Callable[[str], str]:
    """Each instance probes "mistral" (OpenAI wire format) at ``base_url(name)``, every second; two
    failed runs in a row make an outage; the control URL answers, so the network counts as up."""
    vendor_server.set("/control", b"ok")

    def config(name: str) -> str:
        return f"""
watch = ["mistral"]
[storage]
url = "{pg_url}"
[web]
enabled = false
port = {free_port()}
[vendors.mistral.sources.summary]
enabled = false
[[routes]]
name = "m"
slack_channels = ["{CHANNEL}"]
[slack]
base_url = "{slack_server.api_url}"
timeout = 5
[probes]
interval = 1
fast_interval = 1
timeout = 3
canaries_per_run = 0
fail_consecutive = 2
recover_consecutive = 1
control_urls = ["{vendor_server.url("/control")}"]
[probes.vendors.mistral]
base_url = "{base_url(name)}"
format = "openai"
model = "mistral-small"
"""

    return config


@pytest.mark.parametrize("where", ["follower", "leader"])
def test_an_api_failure_seen_from_one_location_is_local_and_pages_nobody_but_from_all_it_alerts_once(
    make_cluster, pg_url, vendor_server, slack_server, where
):
    """Proves: when the vendor API fails from one location only (its stand-in answers 503 while the
    other two are served), whether that location is a follower's or the leader's own, no outage is
    declared and Slack hears nothing; the failure is logged and shown by `watcher cluster` as that
    location's local problem. When it then fails from every location, exactly one outage alert
    goes out."""
    from llm_server import LlmServer

    slack_server.add_channel(CHANNEL)
    apis = {name: LlmServer().start() for name, _ in INSTANCES}  # the API as each location reaches it
    try:
        for api in apis.values():
            api.openai.set(models=["mistral-small"])
        c = make_cluster(
            probe_config(pg_url, slack_server, vendor_server, lambda name: apis[name].base("openai")),
            env={
                "WATCHER_SLACK__TOKEN": slack_server.token,
                "WATCHER_PROBES__VENDORS__MISTRAL__KEY": apis["a"].key("openai"),
            },
        )
        c.start_all()
        leader, _ = c.wait(lambda: formed(c), timeout=40)
        broken = leader if where == "leader" else min({"a", "b", "c"} - {leader})
        place = c.locations[broken]

        def runs() -> dict[str, tuple[int, int]]:
            """Probe runs per location so far: (count, failed)."""
            rows = c.sql(
                "SELECT location, COUNT(*) AS n, COUNT(*) FILTER (WHERE NOT ok) AS bad FROM probe_results "
                "WHERE vendor = 'mistral' GROUP BY location"
            )
            return {r["location"]: (r["n"], r["bad"]) for r in rows}

        c.wait(lambda: all(runs().get(loc, (0, 0))[0] >= 2 for _, loc in INSTANCES), timeout=30)
        apis[broken].openai.fail_next(10_000, status=503)
        # enough runs for the outage rule (2 failed in a row), then as many again
        c.wait(lambda: runs().get(place, (0, 0))[1] >= 5, timeout=30)
        seen = runs()
        assert all(bad == 0 for loc, (_, bad) in seen.items() if loc != place), seen
        time.sleep(2)  # more runs: room for a wrong alert to reach the outbox and Slack
        assert slack_server.messages(CHANNEL) == [], roots(slack_server)
        assert c.sql("SELECT id, action, channel, state FROM notifications") == []
        assert not c.sql("SELECT id, title FROM incidents WHERE vendor = 'mistral' AND kind = 'outage'")
        logged = [line for line in c.log(leader).splitlines() if "mistral" in line.lower()]
        assert any(place in line and "local" in line for line in logged), "\n".join(logged) or c.logs()
        status = c.status()
        failing = [(p["vendor"], p["location"]) for p in status["api_failing"]]
        assert failing == [("mistral", place)], status
        assert status["leader"] == leader, "the leader's own local problem does not cost it the lease"
        table = c.cli("cluster").stdout
        assert re.search(rf"mistral.*{place}", table), table

        # now the API fails from everywhere: one outage, one alert
        down_at = time.time()
        for api in apis.values():
            api.openai.fail_next(10_000, status=503)
        [msg] = c.wait(lambda: slack_server.messages(CHANNEL), timeout=40)
        [post] = [r for r in slack_server.calls("chat.postMessage") if not r.args.get("thread_ts")]
        print(f"\nAPI down from {place} ({where}) only: no alert; then from all 3: alert after {post.at - down_at:.2f} s")
        assert "not answering" in msg.all_text()
        now = {loc: n for loc, (n, _) in runs().items()}
        c.wait(lambda: all(runs()[loc][0] >= now[loc] + 3 for loc in now), timeout=20)
        assert len(slack_server.messages(CHANNEL)) == 1, roots(slack_server)
        assert [r for r in slack_server.calls("chat.postMessage") if not r.args.get("thread_ts")] == [post]
        opened = c.sql("SELECT id FROM incidents WHERE vendor = 'mistral' AND kind = 'outage'")
        assert len(opened) == 1, opened
        status = c.status()
        assert sorted(p["location"] for p in status["api_failing"]) == ["frankfurt", "paris", "virginia"], status
        assert_clean_logs(c)
        assert apis["a"].key("openai") not in "".join(c.log(n) for n in c.procs)
    finally:
        for api in apis.values():
            api.stop()


def test_a_vendor_outage_seen_by_two_locations_is_declared_even_when_the_leaders_own_location_is_blind(
    make_cluster, pg_url, vendor_server, slack_server, llm_server
):
    """Proves: the outage rule counts the locations that see the API; when the leader's own location
    cannot see anything (no control host and no API answers from paris), the two other locations
    seeing the API down still declare the outage, with one alert."""
    slack_server.add_channel(CHANNEL)
    llm_server.openai.set(models=["mistral-small"])
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    base = probe_config(pg_url, slack_server, vendor_server, lambda name: llm_server.base("openai"))

    def config(name: str) -> str:
        text = base(name)
        if name == "a":  # paris: neither the control host nor the API answers from there
            text = text.replace(llm_server.base("openai"), f"{dead}/v1")
            text = text.replace(vendor_server.url("/control"), f"{dead}/control")
        return text

    c = make_cluster(
        config,
        env={"WATCHER_SLACK__TOKEN": slack_server.token, "WATCHER_PROBES__VENDORS__MISTRAL__KEY": llm_server.key("openai")},
    )
    c.start("a", "paris")
    assert c.wait(lambda: formed(c), timeout=40)[0] == "a"
    c.start("b", "frankfurt")
    c.start("c", "virginia")
    assert c.wait(lambda: formed(c), timeout=40)[0] == "a"
    c.wait(lambda: "our network is down" in c.log("a"), timeout=20)
    llm_server.openai.fail_next(10_000, status=503)
    # the cluster knows: two locations of three see the API down, paris has no opinion
    c.wait(lambda: {p["location"] for p in c.status()["api_failing"]} == {"frankfurt", "virginia"}, timeout=20)
    c.wait(lambda: [m for m in slack_server.messages(CHANNEL) if "Mistral" in m.text], timeout=10)
    assert c.status()["network_down"] == ["paris"], "watcher cluster names the blind location"
    time.sleep(3)  # room for a second alert, or for a notice about paris's network, to show up
    roots = [m for m in slack_server.messages(CHANNEL) if m.thread_ts is None]
    assert len(roots) == 1 and "Mistral" in roots[0].text, [m.text[:80] for m in roots]
    assert "own network" not in " ".join(m.text for m in slack_server.messages(CHANNEL)), (
        "one location's network trouble is its own in a cluster: logged, not paged"
    )
