"""Shared fixtures: a local vendor server, fixture files, and settings pointing at them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from store_backends import backend  # noqa: E402,F401  (SQLite or PostgreSQL, for any test or fixture)
from vendor_server import VendorServer  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(rel: str) -> bytes:
    return (FIXTURES / rel).read_bytes()


@pytest.fixture
def vendor_server():
    server = VendorServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No WATCHER_* variable from the developer's shell leaks into a test."""
    import os

    for key in list(os.environ):
        if key.startswith("WATCHER_"):
            monkeypatch.delenv(key)


@pytest.fixture
def slack_server():
    """A fake Slack (Web API + incoming webhook) on 127.0.0.1; see tests/slack_server.py for its API."""
    from slack_server import SlackServer

    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 (STARTTLS, login bob); see tests/smtp_server.py for its API."""
    from smtp_server import SmtpServer

    with SmtpServer("starttls") as server:
        yield server


@pytest.fixture
def smtp_server_factory():
    """``smtp_server_factory(mode, **kw)``: more SMTP servers (plain, starttls, smtps), stopped at teardown."""
    from smtp_server import ServerPool

    with ServerPool() as make:
        yield make


@pytest.fixture
def llm_server():
    """Fake OpenAI / Anthropic / Gemini APIs on 127.0.0.1 (streamed SSE); see tests/llm_server.py for its API."""
    from llm_server import LlmServer

    server = LlmServer().start()
    yield server
    server.stop()
