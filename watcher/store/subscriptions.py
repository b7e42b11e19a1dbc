"""Channel subscriptions made from Slack (``/watcher subscribe``).

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

from watcher.store.acks import PeopleQueries
from watcher.store.database import Row, exact, iso

WILDCARD = "*"


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


def subscription_detail(channel: str, vendor: str, kinds: tuple[str, ...] | list[str] | None = None) -> str:
    """The audit detail of a subscription change: ``C0123: openai (outage, degradation)``."""
    return f"{channel}: {vendor}" + (f" ({', '.join(kinds)})" if kinds else "")


class SubscriptionQueries(PeopleQueries):
    def subscribe(
        self, channel: str, vendor: str, kinds: list[str] | tuple[str, ...], by: str, now: datetime
    ) -> bool:
        """Subscribe ``channel`` to ``vendor`` for ``kinds``; True when something changed."""
        kinds = tuple(dict.fromkeys(kinds))
        with self._tx("save subscription"):
            row = self._one(
                "INSERT INTO subscriptions (channel, vendor, kinds, created_by, created_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (channel, vendor) DO UPDATE SET "
                "kinds = EXCLUDED.kinds, created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at "
                "WHERE subscriptions.kinds <> EXCLUDED.kinds RETURNING id",
                [channel, vendor, json.dumps(list(kinds)), by, exact(now)],
                "save subscription",
            )
            if row is None:
                return False
            self.audit(now, by, "subscribe", subscription_detail(channel, vendor, kinds))
        return True

    def unsubscribe(self, channel: str, vendor: str | None, by: str, now: datetime) -> list[str]:
        """Remove this channel's subscription to ``vendor`` (None: all of them); the vendors removed."""
        with self._tx("remove subscription"):
            if vendor is None:
                rows = self._rows(
                    "DELETE FROM subscriptions WHERE channel = %s RETURNING vendor",
                    [channel],
                    "remove subscription",
                )
            else:
                rows = self._rows(
                    "DELETE FROM subscriptions WHERE channel = %s AND vendor = %s RETURNING vendor",
                    [channel, vendor],
                    "remove subscription",
                )
            removed = sorted(r["vendor"] for r in rows)
            for v in removed:
                self.audit(now, by, "unsubscribe", subscription_detail(channel, v))
        return removed

    def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        if channel is None:
            rows = self._rows("SELECT * FROM subscriptions ORDER BY channel, vendor")
        else:
            rows = self._rows("SELECT * FROM subscriptions WHERE channel = %s ORDER BY vendor", [channel])
        return [subscription_from(r) for r in rows]

    def subscriptions_for(self, vendor: str) -> list[Subscription]:
        rows = self._rows(
            "SELECT * FROM subscriptions WHERE vendor IN (%s, %s) ORDER BY id", [vendor, WILDCARD]
        )
        return [subscription_from(r) for r in rows]

    def subscription_changes(self, channel: str, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, at, who, what, detail FROM audit WHERE what IN ('subscribe', 'unsubscribe') "
            "AND substr(detail, 1, %s) = %s ORDER BY id DESC LIMIT %s",
            [len(channel) + 2, channel + ": ", limit],
        )
        return [{**r, "at": iso(r["at"])} for r in rows]


def subscription_from(r: Row) -> Subscription:
    return Subscription(
        id=r["id"],
        channel=r["channel"],
        vendor=r["vendor"],
        kinds=tuple(json.loads(r["kinds"] or "[]")),
        created_by=r["created_by"] or "?",
        created_at=r["created_at"] or datetime.fromtimestamp(0, UTC),
    )
