"""Channel subscriptions made from Slack (``/watcher subscribe``), for the SQLite store.

Config routes stay the base; a subscription adds one Slack channel as a target
for one vendor (or ``*``, every vendor) and a set of incident kinds. One row per
channel and vendor: subscribing again replaces the kinds. Every change is written
to the ``audit`` table in the same transaction, with a detail that starts with
the channel id, so ``/watcher subscriptions`` can show a channel its own history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

WILDCARD = "*"
_COLUMNS = "id, channel, vendor, kinds, created_by, created_at"


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    channel: str
    vendor: str
    """A watched vendor id, or ``*`` for every vendor."""
    kinds: tuple[str, ...]
    created_by: str
    created_at: datetime

    def matches(self, vendor: str, kind: str) -> bool:
        return self.vendor in (WILDCARD, vendor) and kind in self.kinds


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def migration_4(db: sqlite_utils.Database) -> None:
    db["subscriptions"].create(
        {
            "id": int,
            "channel": str,
            "vendor": str,
            "kinds": str,
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        not_null={"channel", "vendor", "kinds"},
    )
    db["subscriptions"].create_index(["channel", "vendor"], unique=True)
    db["subscriptions"].create_index(["vendor"])


def subscription_detail(channel: str, vendor: str, kinds: tuple[str, ...] | list[str] | None = None) -> str:
    """The audit detail of a subscription change: ``C0123: openai (outage, degradation)``."""
    return f"{channel}: {vendor}" + (f" ({', '.join(kinds)})" if kinds else "")


class SubscriptionTables:
    """Mixed into :class:`~watcher.store.sqlite.SQLiteStore`; uses its ``db``, ``_tx`` and ``audit``."""

    db: sqlite_utils.Database

    def subscribe(
        self, channel: str, vendor: str, kinds: list[str] | tuple[str, ...], by: str, now: datetime
    ) -> bool:
        """Subscribe ``channel`` to ``vendor`` for ``kinds``; True when something changed."""
        kinds = tuple(dict.fromkeys(kinds))
        with self._tx():
            row = self.db.execute(
                "SELECT id, kinds FROM subscriptions WHERE channel = ? AND vendor = ?", [channel, vendor]
            ).fetchone()
            if row and tuple(json.loads(row[1])) == kinds:
                return False
            if row:
                self.db.execute(
                    "UPDATE subscriptions SET kinds = ?, created_by = ?, created_at = ? WHERE id = ?",
                    [json.dumps(list(kinds)), by, _ts(now), row[0]],
                )
            else:
                self.db["subscriptions"].insert(
                    {
                        "channel": channel,
                        "vendor": vendor,
                        "kinds": json.dumps(list(kinds)),
                        "created_by": by,
                        "created_at": _ts(now),
                    }
                )
            self.audit(now, by, "subscribe", subscription_detail(channel, vendor, kinds))
        return True

    def unsubscribe(self, channel: str, vendor: str | None, by: str, now: datetime) -> list[str]:
        """Remove this channel's subscription to ``vendor`` (None: all of them); the vendors removed."""
        with self._tx():
            if vendor is None:
                rows = self.db.execute(
                    "SELECT id, vendor FROM subscriptions WHERE channel = ? ORDER BY vendor", [channel]
                ).fetchall()
            else:
                rows = self.db.execute(
                    "SELECT id, vendor FROM subscriptions WHERE channel = ? AND vendor = ?", [channel, vendor]
                ).fetchall()
            for sid, v in rows:
                self.db.execute("DELETE FROM subscriptions WHERE id = ?", [sid])
                self.audit(now, by, "unsubscribe", subscription_detail(channel, v))
        return [v for _, v in rows]

    def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """Every subscription (of one channel), by channel then vendor."""
        if channel is None:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM subscriptions ORDER BY channel, vendor"
            ).fetchall()
        else:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE channel = ? ORDER BY vendor", [channel]
            ).fetchall()
        return [_subscription(r) for r in rows]

    def subscriptions_for(self, vendor: str) -> list[Subscription]:
        """The subscriptions that name this vendor or ``*`` (the engine filters the kind)."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE vendor IN (?, ?) ORDER BY id", [vendor, WILDCARD]
        ).fetchall()
        return [_subscription(r) for r in rows]

    def subscription_changes(self, channel: str, limit: int = 10) -> list[dict[str, Any]]:
        """This channel's subscription changes from the audit log, newest first."""
        prefix = channel.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ": %"
        return list(
            self.db.query(
                "SELECT * FROM audit WHERE what IN ('subscribe', 'unsubscribe') "
                "AND detail LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?",
                [prefix, limit],
            )
        )


def _subscription(r: tuple) -> Subscription:
    sid, channel, vendor, kinds, by, at = r
    return Subscription(
        id=sid,
        channel=channel,
        vendor=vendor,
        kinds=tuple(json.loads(kinds or "[]")),
        created_by=by or "?",
        created_at=datetime.fromisoformat(at) if at else datetime.fromtimestamp(0, UTC),
    )
