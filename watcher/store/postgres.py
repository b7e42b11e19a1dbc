"""The store on PostgreSQL, for several watchers on one database (see :mod:`watcher.store.pg`).

Selected by ``storage.url = "postgresql://..."`` (the password, if any, belongs in
``WATCHER_STORAGE__URL``, never in the config file). The queries are the SQLite store's,
written once; what differs is the connection (reopened when lost), the schema (the URL's
``search_path``; each schema is its own cluster), row locks, and the instances of the cluster.
"""

from __future__ import annotations

from watcher.store.leader import InstanceRecord
from watcher.store.pg import (
    CONNECT_TIMEOUT,
    LEADER_LOCK,
    MIGRATION_LOCK,
    Postgres,
    connect,
    is_postgres_url,
    list_instances,
    redact_url,
    schema_key,
    server_address,
)
from watcher.store.schema import SCHEMA_VERSION
from watcher.store.stores import SQLStore


class PostgresStore(SQLStore):
    """:class:`~watcher.store.stores.SQLStore` on the PostgreSQL schema the URL names."""

    def __init__(
        self,
        url: str,
        *,
        location: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_transaction_timeout: float | None = None,
    ):
        self.url = url
        self.redacted = redact_url(url)
        self.connect_timeout = connect_timeout
        self.idle_transaction_timeout = idle_transaction_timeout
        super().__init__(
            Postgres(url, connect_timeout=connect_timeout, idle_transaction_timeout=idle_transaction_timeout),
            location=location,
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted

    def instances(self) -> list[InstanceRecord]:
        """Every watcher instance that ever joined, leader first (for ``watcher cluster``)."""
        return self._run("list instances", list_instances, retry=True)


__all__ = [
    "LEADER_LOCK",
    "MIGRATION_LOCK",
    "SCHEMA_VERSION",
    "PostgresStore",
    "connect",
    "is_postgres_url",
    "redact_url",
    "schema_key",
    "server_address",
]
