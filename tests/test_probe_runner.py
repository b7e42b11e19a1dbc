"""Our own eyes, end to end: probes against fake vendor APIs become incidents and alerts.

Real parts: the fake OpenAI-shaped API (tests/llm_server.py) on 127.0.0.1, the real
clients, canaries, budget, detectors, pipeline, SQLite store and alert engine. The
clock is the test's, so days of probing take seconds.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import pytest

from watcher.alerts.engine import AlertEngine
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.fetch import make_client
from watcher.model import SELF_VENDOR, IncidentKind
from watcher.pipeline import Pipeline
from watcher.probes.canaries import load_canaries
from watcher.probes.runner import ProbeRunner
from watcher.probes.service import ProbeService
from watcher.store.sqlite import SQLiteStore

CANARIES = load_canaries()
REFERENCE = {c.prompt: c.reference for c in CANARIES}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clock:
    def __init__(self):
        self.now = datetime(2026, 10, 7, 9, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


class Probing:
    """One vendor (mistral, OpenAI wire format) probed against the fake API; alerts to a route."""

    def __init__(self, llm_server, vendor_server, tmp_path, *, base_url=None, control=None, **probe_kw):
        llm_server.openai.set(answer_fn=lambda prompt: REFERENCE.get(prompt, "?"), models=["mistral-small"])
        vendor_server.set("/control", b"ok")
        probes = {
            "interval": 300,
            "fast_interval": 60,
            "canaries_per_run": 5,
            "control_urls": control or [vendor_server.url("/control")],
            "vendors": {
                "mistral": {
                    "key": llm_server.key("openai"),
                    "base_url": base_url or llm_server.base("openai"),
                    "format": "openai",
                    "model": "mistral-small",
                    **probe_kw,
                }
            },
        }
        self.settings = Settings.model_validate(
            {
                "watch": ["mistral"],
                "storage": {"path": str(tmp_path / "w.db")},
                "vendors": {"mistral": {"sources": {"summary": {"enabled": False}}}},
                "routes": [{"name": "m", "slack_channels": ["C0MKTG"]}],
                "probes": probes,
            }
        )
        self.vendors = resolve(self.settings)
        self.store = SQLiteStore(self.settings.storage.path)
        self.clock = Clock()
        self.engine = AlertEngine(self.settings, self.store, self.vendors, clock=self.clock)
        self.llm = llm_server

    def run(self, times: int = 1, every: float = 300):
        async def go():
            async with make_client(user_agent="test") as client:
                pipe = Pipeline(self.store, client, self.settings, self.vendors, clock=self.clock)
                runner = ProbeRunner(self.settings, self.store, self.vendors, client, clock=self.clock)
                service = ProbeService(runner, pipe, self.engine.on_changes)
                outs = []
                for _ in range(times):
                    outs.append(await service.probe("mistral"))
                    self.clock.now += timedelta(seconds=every)
                return outs

        return asyncio.run(go())

    def incidents(self, vendor="mistral"):
        return self.store.incidents(vendor=vendor)

    def alerts(self):
        return [
            (n.alert.vendor, n.alert.kind, n.action.value)
            for n in reversed(self.store.notifications(limit=1000))
        ]

    def close(self):
        self.store.close()


@pytest.fixture
def probing(llm_server, vendor_server, tmp_path):
    made = []

    def build(**kw):
        p = Probing(llm_server, vendor_server, tmp_path, **kw)
        made.append(p)
        return p

    yield build
    for p in made:
        p.close()


def test_a_wrong_answer_rate_rising_to_30_percent_opens_one_hallucination_spike_which_then_resolves(probing):
    p = probing()
    p.llm.openai.set(wrong_rate=0.02, seed=7)
    p.run(40)  # 200 canaries at 2 %
    assert p.incidents() == []
    p.llm.openai.set(wrong_rate=0.30, seed=8)
    outs = p.run(12)  # one hour at 30 %
    [inc] = p.incidents()
    assert inc.kind is IncidentKind.HALLUCINATION_SPIKE and inc.is_open
    assert "wrong" in inc.reason and "of the last" in inc.reason, inc.reason
    assert any(o.fast for o in outs), "the detector in warning makes the probes come faster"
    p.llm.openai.set(wrong_rate=0.0)
    p.run(30)
    [inc] = p.incidents()
    assert not inc.is_open, "it resolves once the answers are right again"
    assert p.alerts() == [
        ("mistral", "hallucination_spike", "opened"),
        ("mistral", "hallucination_spike", "resolved"),
    ]


def test_a_steady_2_percent_wrong_rate_raises_nothing_over_a_long_time(probing):
    p = probing()
    p.llm.openai.set(wrong_rate=0.02, seed=3)
    p.run(400)  # 2000 canaries, about 33 hours
    assert p.incidents() == []
    wrong = sum(1 for r in p.store.probe_results("mistral", limit=5000) if r["passed"] == 0)
    assert wrong > 0, "the stream really had wrong answers in it"


def test_our_network_down_raises_one_notice_and_no_vendor_alert(probing):
    p = probing(
        base_url=f"http://127.0.0.1:{closed_port()}/v1", control=[f"http://127.0.0.1:{closed_port()}/"]
    )
    outs = p.run(10)
    assert all(o.snapshot is None for o in outs), "nothing was judged while our network was down"
    assert p.incidents() == [], "no vendor incident"
    [notice] = p.incidents(SELF_VENDOR)
    assert notice.is_open and notice.kind is IncidentKind.OUTAGE
    assert p.alerts() == [(SELF_VENDOR, "outage", "opened")]


def test_a_dead_vendor_api_with_our_network_up_is_an_outage_that_recovers(probing, llm_server):
    p = probing()
    p.run(3)
    llm_server.openai.fail_next(4 * 6, status=503)  # 4 runs: a model list and 5 canaries each
    p.run(4)
    [inc] = p.incidents()
    assert inc.kind is IncidentKind.OUTAGE and inc.is_open
    p.run(4)
    [inc] = p.incidents()
    assert not inc.is_open
    assert p.incidents(SELF_VENDOR) == [], "our network was fine all along"


def test_the_daily_budget_is_never_exceeded(probing, llm_server):
    p = probing(daily_tokens=1500, daily_cost=1.0)
    outs = p.run(30)
    chats = [r for r in llm_server.openai.requests if r.path.endswith("/chat/completions")]
    spent = outs[-1].budget
    assert spent.spent_tokens + spent.reserved_tokens <= 1500
    assert 0 < len(chats) < 30 * 5, "canaries stopped when the day's tokens ran out"
    assert any("budget" in n for o in outs for n in o.notes)
    # the next UTC day, canaries run again
    before = len(chats)
    p.clock.now = datetime(2026, 10, 8, 0, 5, tzinfo=UTC)
    p.run(1)
    chats = [r for r in llm_server.openai.requests if r.path.endswith("/chat/completions")]
    assert len(chats) > before


def test_a_model_we_use_vanishing_from_the_list_is_an_api_change(probing, llm_server):
    p = probing(models_in_use=["mistral-small", "mistral-large"])
    llm_server.openai.set(models=["mistral-small", "mistral-large"])
    p.run(2)
    assert p.incidents() == []
    llm_server.openai.set(models=["mistral-small"])
    p.run(1)
    [inc] = p.incidents()
    assert inc.kind is IncidentKind.API_CHANGE
    assert "mistral-large" in inc.title


def test_deprecation_headers_are_an_api_change(probing, llm_server):
    p = probing()
    llm_server.openai.set(sunset="Wed, 31 Dec 2026 23:59:59 GMT")
    p.run(1)
    [inc] = p.incidents()
    assert inc.kind is IncidentKind.API_CHANGE
    assert "Sunset" in inc.reason


CHANGELOG = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Changelog</title><link>https://example.com</link>
<item><title>Deprecation of mistral-small-2402</title><link>https://example.com/changelog/1</link>
<description>mistral-small-2402 will be retired on 2026-12-01. Use mistral-small-latest.</description>
<pubDate>Mon, 05 Oct 2026 10:00:00 GMT</pubDate></item>
<item><title>New model: mistral-small-2409</title><link>https://example.com/changelog/2</link>
<description>Faster and cheaper.</description><pubDate>Tue, 06 Oct 2026 10:00:00 GMT</pubDate></item>
</channel></rss>"""


def test_a_changelog_announcing_the_retirement_of_a_model_in_use_is_an_api_change(probing, vendor_server):
    vendor_server.set("/changelog.rss", CHANGELOG)
    p = probing(
        models_in_use=["mistral-small-2402"],
        changelog_feeds=[vendor_server.url("/changelog.rss")],
    )
    p.llm.openai.set(models=["mistral-small", "mistral-small-2402"])
    p.run(1)
    [inc] = p.incidents()
    assert inc.kind is IncidentKind.API_CHANGE
    assert "retirement of mistral-small-2402" in inc.reason


def test_a_changelog_about_other_models_raises_nothing(probing, vendor_server):
    vendor_server.set("/changelog.rss", CHANGELOG)
    p = probing(models_in_use=["mistral-small-2409"], changelog_feeds=[vendor_server.url("/changelog.rss")])
    p.llm.openai.set(models=["mistral-small", "mistral-small-2409"])
    p.run(1)
    assert p.incidents() == []


def test_an_answer_whose_shape_changed_is_an_api_change(probing, llm_server):
    p = probing()
    p.run(1)
    llm_server.openai.set(malformed="shape")
    p.run(1)
    [inc] = p.incidents()
    assert inc.kind is IncidentKind.API_CHANGE
    assert "shape" in inc.reason
