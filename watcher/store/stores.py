"""The store: every query, written once, on the database its dialect connects to.

:class:`SQLStore` gathers the query modules, each named for what it holds
(:mod:`~watcher.store.observed`, :mod:`~watcher.store.outbox`, :mod:`~watcher.store.acks`,
:mod:`~watcher.store.subscriptions`, :mod:`~watcher.store.measurements`,
:mod:`~watcher.store.maintenance`, :mod:`~watcher.store.cluster`) on one
:class:`~watcher.store.database.Database`. :class:`~watcher.store.sqlite.SQLiteStore` and
:class:`~watcher.store.postgres.PostgresStore` only choose the dialect; consumers ask for
the role they need (:mod:`watcher.store.roles`).
"""

from __future__ import annotations

from watcher.store.cluster import ClusterQueries
from watcher.store.maintenance import MaintenanceQueries
from watcher.store.measurements import MeasurementQueries
from watcher.store.outbox import OutboxQueries
from watcher.store.roles import Store
from watcher.store.subscriptions import SubscriptionQueries


class SQLStore(SubscriptionQueries, OutboxQueries, MeasurementQueries, MaintenanceQueries, ClusterQueries):
    """Every role of :mod:`watcher.store.roles`, on SQLite or PostgreSQL."""


def _satisfies_every_role(store: SQLStore) -> Store:
    """Never called: mypy checks here that :class:`SQLStore` is every role of :mod:`watcher.store.roles`."""
    return store
