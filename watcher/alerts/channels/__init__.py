"""Notification channels: one class per channel and a registry (see :mod:`.base` and :mod:`.registry`).

Importing this package registers the built-in channels, in the order routes list
their targets: Slack, email, Apprise.
"""

from __future__ import annotations

from watcher.alerts.channels import registry
from watcher.alerts.channels.apprise import AppriseChannel
from watcher.alerts.channels.base import (
    STANDALONE_ACTIONS,
    Channel,
    Check,
    DirectOutlet,
    Outlet,
    Transports,
)
from watcher.alerts.channels.email import EmailChannel
from watcher.alerts.channels.slack import SlackChannel

registry.register(SlackChannel())
registry.register(EmailChannel())
registry.register(AppriseChannel())

__all__ = [
    "STANDALONE_ACTIONS",
    "AppriseChannel",
    "Channel",
    "Check",
    "DirectOutlet",
    "EmailChannel",
    "Outlet",
    "SlackChannel",
    "Transports",
    "registry",
]
