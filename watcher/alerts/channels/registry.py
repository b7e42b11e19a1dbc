"""The registry of notification channels: the one place that knows which channels exist.

Routing (which targets a route names), the outbox (which class sends a row), the
fallback, the metrics' ``channel`` label, the labels shown on the board and in
``watcher doctor`` all read this list instead of keeping their own. Adding a
channel is one module with a :class:`~watcher.alerts.channels.base.Channel`
subclass and one :func:`register` call (the built-ins register in
:mod:`watcher.alerts.channels`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from watcher.alerts.channels.base import Channel

if TYPE_CHECKING:
    from watcher.config import RouteSettings

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


def route_keys() -> str:
    """How a route names targets, one spelling per registered channel, for messages about a route with
    none: "slack_channels, emails, apprise or targets.pager" (a built-in's usual field, else its
    ``targets`` entry)."""
    from watcher.config import USUAL_TARGET_FIELDS

    keys = [USUAL_TARGET_FIELDS.get(name, f"targets.{name}") for name in _CHANNELS]
    return " or ".join([", ".join(keys[:-1]), keys[-1]]) if len(keys) > 1 else "".join(keys)


def check_routes(routes: Sequence[RouteSettings], where: str = "in the configuration") -> None:
    """Refuse a route whose ``targets`` table names a channel that is not registered.

    The settings model checks only the shape of ``targets`` (the config is a lower stage than the
    channels and cannot know them); every command calls this right after loading, so a typo such as
    ``targets.pagr`` stops ``watcher run`` and ``watcher config check`` with the names it could be,
    instead of routing that route's alerts nowhere. Raises :class:`~watcher.config.ConfigError`.
    """
    from watcher.config import ConfigError

    known = names()
    problems = []
    for i, route in enumerate(routes):
        for name in route.targets:
            if name in _CHANNELS:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"  - routes.{i}.targets.{name}: no channel is called {name!r} (route {route.name!r}, {where}); "
                f"the channels are: {', '.join(known)}.{hint}"
            )
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError("\n".join([f"invalid configuration ({count}):", *problems]))
