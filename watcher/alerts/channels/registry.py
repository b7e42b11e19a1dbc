"""The registry of notification channels: the one place that knows which channels exist.

Routing (which targets a route names), the outbox (which class sends a row), the
fallback, the metrics' ``channel`` label, the labels shown on the board and in
``watcher doctor`` all read this list instead of keeping their own. Adding a
channel is one module with a :class:`~watcher.alerts.channels.base.Channel`
subclass and one :func:`register` call (the built-ins register in
:mod:`watcher.alerts.channels`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from watcher.alerts.channels.base import Channel

_CHANNELS: dict[str, Channel] = {}


def register(channel: Channel) -> Channel:
    """Add ``channel`` (or replace the one of the same name); returns it."""
    _CHANNELS[channel.name] = channel
    return channel


def unregister(name: str) -> None:
    _CHANNELS.pop(name, None)


@contextmanager
def registered(channel: Channel) -> Iterator[Channel]:
    """``channel`` registered for the length of a ``with`` block (a test's toy channel)."""
    before = _CHANNELS.get(channel.name)
    register(channel)
    try:
        yield channel
    finally:
        if before is None:
            unregister(channel.name)
        else:
            register(before)


def channels() -> list[Channel]:
    """Every registered channel, in registration order (Slack, email, Apprise, then any added)."""
    return list(_CHANNELS.values())


def names() -> tuple[str, ...]:
    return tuple(_CHANNELS)


def get(name: str) -> Channel | None:
    return _CHANNELS.get(name)


def label(name: str, locale: str = "en") -> str:
    """The channel's name for people ("Slack", "email"); an unknown one (a row from an older version) as is."""
    ch = _CHANNELS.get(name)
    return ch.label(locale) if ch is not None else name
