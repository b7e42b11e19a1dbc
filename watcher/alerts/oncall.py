"""Who is on call, and who is next: a plain rotation over the configured people."""

from __future__ import annotations

from datetime import UTC, datetime, time

from watcher.config import OnCallPerson, OnCallSettings


def rotation(settings: OnCallSettings, now: datetime) -> list[OnCallPerson]:
    """The people in escalation order: the one on call now first, then the next ones.

    Shifts are ``rotation_days`` long and start at midnight UTC on ``rotation_start``.
    """
    people = settings.people
    if not people:
        return []
    start = datetime.combine(settings.rotation_start, time(0), tzinfo=UTC)
    shift = int((now - start).total_seconds() // (settings.rotation_days * 86400))
    first = shift % len(people)
    return people[first:] + people[:first]


def mention(person: OnCallPerson) -> str:
    """How to name a person in Slack: a real mention when their user id is known."""
    return f"<@{person.slack}>" if person.slack else person.name
