"""Delivering the outbox: claim, send, record; retry with backoff; fall back to the other channel.

Database work stays on the event loop thread; only the network call of a
transport runs in a worker thread, from a pool of its own per channel. Each
target (a Slack channel, an email address, an Apprise URL) is a *lane*: its
notifications go out one at a time, in order, so a Slack outage delays messages
but never reorders or drops them. Lanes run concurrently: an SMTP server that
accepts connections and never answers holds back the email lanes only, never
Slack, and a silent Slack never delays email (:meth:`Deliverer.wait_reasons`
says why each row waits, for ``watcher outbox``).

Retry policy: exponential backoff with jitter (5 s, 10 s, 20 s … capped at
5 min), never sooner than the server's own ``Retry-After``; a permanent error
(bad token, unknown channel, login refused) stops at once and is reported; a
notification still failing after ``alerts.retry_for`` dies. When one channel has
been failing for ``alerts.fallback_after`` (or fails permanently), the same alert
is also queued on the other channel: email when Slack fails, Slack when email
fails.

What was sent is always recorded, however long the database refuses writes (a full
disk, a read-only file): the sender waits and tries again (:meth:`Deliverer.record`)
rather than leave the row claimed for the life of the process, which would hold back
every later message of its incident to that target, or forget the Slack thread, which
would make the next update a second message instead of an edit. While it waits, nothing
else is sent in that lane (and the other lanes stop at their own next record: nothing
could be recorded either).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from watcher.alerts.channels import Transports, registry
from watcher.alerts.model import TransportError
from watcher.config import Settings
from watcher.store.base import StoreError
from watcher.store.outbox import Notification

log = logging.getLogger("watcher.alerts.deliver")

BACKOFF_BASE = 5.0
BACKOFF_MAX = 300.0
RECORD_RETRY_FIRST = 0.5
RECORD_RETRY_MAX = 5.0
"""Seconds between tries to record an outcome the database refused (doubling from the first)."""
SEND_THREADS = 8
"""Worker threads per channel: a channel whose server hangs ties up its own threads only."""
DUE_BATCH = 500
"""Rows read per pass over the outbox (the first due rows of every incident and target)."""
STOP_GRACE = 10.0
"""Seconds a stopping daemon lets sends in flight finish before it leaves them to the next start."""


def backoff(
    attempts: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next try after ``attempts`` failed ones."""
    delay = min(BACKOFF_BASE * 2 ** max(0, attempts - 1), BACKOFF_MAX) * (0.8 + 0.4 * rand())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


__all__ = ["Deliverer", "Transports", "backoff", "channel_timeout", "stuck_alerts", "wait_reasons"]
"""``Transports`` lives with the channels (:mod:`watcher.alerts.channels.base`); re-exported for callers."""


class Deliverer:
    """The outbox's sender: one lane per target, retries, fallback; the channels' :class:`Outlet`."""

    def __init__(
        self,
        settings: Settings,
        store,
        transports: Transports,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.settings = settings
        self.store = store
        self.transports = transports
        self.clock = clock
        self.wake = asyncio.Event()
        self.may_send: Callable[[], bool] = lambda: True
        """False on a cluster follower: only the leader sends (see :mod:`watcher.store.leader`)."""
        self.sent = 0
        self.failed = 0
        self.claimed = 0
        self._lanes: dict[tuple[str, str], asyncio.Task] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}

    def recover(self) -> int:
        """At start: rows a crash left claimed go back to pending (sent again: at most one duplicate)."""
        n = self.store.recover_inflight()
        if n:
            log.warning("%d notification(s) were being sent when watcher last stopped; sending them again", n)
        return n

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                try:
                    if self.may_send():
                        self._dispatch()
                except Exception:  # the sender must outlive any single bad notification
                    log.exception("delivery loop error")
                # rows already due are either on their way (a lane, which wakes us when it ends) or
                # wait behind a busy lane or an earlier row: sleep until the next row falls due
                now = self.clock()
                nxt = self.store.next_due_at(after=now) if self.may_send() else None
                wait = 5.0 if self.may_send() else 1.0
                if nxt is not None:
                    wait = min(wait, max(0.05, (nxt - now).total_seconds()))
                self.wake.clear()
                stop_task = asyncio.ensure_future(stopping.wait())
                wake_task = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait({stop_task, wake_task}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                for t in (stop_task, wake_task):
                    t.cancel()
        finally:
            running = [t for t in self._lanes.values() if not t.done()]
            if running:
                _done, late = await asyncio.wait(running, timeout=STOP_GRACE)
                for t in late:  # their rows stay claimed and are sent again at the next start
                    t.cancel()

    async def deliver_due(self) -> int:
        """Send everything due now, every lane at once, and wait until each lane is done; rows claimed."""
        start = self.claimed
        while True:
            before = self.claimed
            self._dispatch()
            running = [t for t in self._lanes.values() if not t.done()]
            if not running:
                break
            await asyncio.gather(*running, return_exceptions=True)
            if self.claimed == before:
                break
        return self.claimed - start

    def _dispatch(self) -> int:
        """Start a lane task for every target with due rows and no task already running; how many."""
        if not self.may_send():
            return 0
        lanes: dict[tuple[str, str], list[Notification]] = {}
        for n in self.store.due_notifications(self.clock(), limit=DUE_BATCH):
            lanes.setdefault((n.channel, n.target), []).append(n)
        started = 0
        for key, rows in lanes.items():
            task = self._lanes.get(key)
            if task is not None and not task.done():
                continue  # this target is busy (perhaps hung): its next rows wait their turn
            task = asyncio.ensure_future(self._lane(key, rows))
            task.add_done_callback(lambda _t: self.wake.set())  # the lane's next rows may be due now
            self._lanes[key] = task
            started += 1
        for key in [k for k, t in self._lanes.items() if t.done() and k not in lanes]:
            del self._lanes[key]
        return started

    async def _lane(self, key: tuple[str, str], rows: list[Notification]) -> None:
        """One target's due rows, one at a time, in order."""
        try:
            for n in rows:
                if not self.may_send():
                    return  # leadership lost: the new leader takes it from here
                if not self.store.claim(n.id, self.clock()):
                    continue  # another worker has it
                self.claimed += 1
                n.attempts += 1  # as the claim counted it: this is try number n.attempts
                await self._deliver(n)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lane must end cleanly, whatever a row did
            log.exception("delivery to %s %s failed", *key)

    async def in_thread(self, channel: str, fn: Callable, /, *args):
        """Run a transport's blocking call in ``channel``'s own worker threads."""
        pool = self._pools.get(channel)
        if pool is None:
            pool = self._pools[channel] = ThreadPoolExecutor(
                SEND_THREADS, thread_name_prefix=f"send-{channel}"
            )
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))

    async def record(self, n: Notification, what: str, write: Callable[[], object]) -> None:
        """Run ``write`` (a store write about ``n``) until the database takes it.

        Only for outcomes that already happened: a message that went out, a failure to
        schedule again. Database errors are retried, with one log line when they start and
        one when they end; the wait ends with the write, or with the task cancelled at
        shutdown (the row stays claimed and is sent again at the next start: at most one
        duplicate, as after a crash).
        """
        delay = RECORD_RETRY_FIRST
        since: float | None = None
        while True:
            try:
                write()
            except StoreError as e:
                if since is None:
                    since = time.monotonic()
                    log.error(
                        "notification #%s: cannot record %s (%s); trying again until the database takes it, "
                        "nothing else is sent to this target meanwhile",
                        n.id,
                        what,
                        e,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX)
                continue
            if since is not None:
                log.warning(
                    "notification #%s: %s recorded after %.0fs of database errors",
                    n.id,
                    what,
                    time.monotonic() - since,
                )
            return

    async def _deliver(self, n: Notification) -> None:
        try:
            ref = await self._send(n)
        except TransportError as e:
            await self._failed(n, e)
            return
        except Exception as e:  # a transport bug is a failed send, not a dead sender
            log.exception("notification #%s: unexpected error", n.id)
            await self._failed(n, TransportError(f"unexpected error: {e!r}"))
            return
        await self.record(n, "its delivery", lambda: self.store.mark_delivered(n.id, self.clock(), ref))
        self.sent += 1
        log.info(
            "notification #%s delivered: incident #%s %s to %s %s",
            n.id,
            n.incident_id,
            n.action,
            n.channel,
            n.target,
        )

    async def _failed(self, n: Notification, e: TransportError) -> None:
        now = self.clock()
        self.failed += 1
        first = n.first_error_at or now
        too_old = (now - n.created_at).total_seconds() > self.settings.alerts.retry_for
        if e.permanent or too_old:
            why = e.message if e.permanent else f"gave up after {n.attempts} tries: {e.message}"
            await self.record(n, "that it failed for good", lambda: self.store.mark_dead(n.id, now, why))
            log.error("notification #%s to %s %s failed for good: %s", n.id, n.channel, n.target, why)
            await self.record(n, "its fallback", lambda: self._fallback(n, why))
            return
        delay = backoff(n.attempts, e.retry_after)
        not_before = now + timedelta(seconds=delay)
        await self.record(n, "its retry", lambda: self.store.mark_retry(n.id, now, not_before, e.message))
        log.warning(
            "notification #%s to %s %s failed (try %d), retrying in %.0fs: %s",
            n.id,
            n.channel,
            n.target,
            n.attempts,
            delay,
            e.message,
        )
        if (now - first).total_seconds() >= self.settings.alerts.fallback_after:
            await self.record(n, "its fallback", lambda: self._fallback(n, e.message))

    def _fallback(self, n: Notification, why: str) -> None:
        if n.fallback_sent or n.fallback_of is not None:
            return
        targets: list[tuple[str, str]] = []
        route = next((r for r in self.settings.routes if r.name == n.route), None)
        failing = registry.get(n.channel)
        other = registry.get(failing.fallback_to) if failing is not None and failing.fallback_to else None
        if other is not None and other.problem(self.transports) is None:
            targets = [(other.name, t) for t in other.fallback_targets(self.settings, route)]
        if not targets:
            log.error("notification #%s: no fallback channel configured for route %s", n.id, n.route)
            return
        already = {(c, t) for c, t, _ in self.store.alerted_targets(n.incident_id)}
        targets = [t for t in targets if t not in already]
        if not targets:  # the other channel gets this incident's alerts anyway: a copy would be a duplicate
            self.store.mark_fallback_sent(n.id)
            log.warning(
                "notification #%s: %s keeps failing (%s); the route's other channel has it",
                n.id,
                n.channel,
                why,
            )
            return
        # Everything queued for the incident on the failing target follows, as one message that
        # shows the incident as it is now: the newest queued row holds the latest facts (a resolve
        # queued behind the failing opening included). Later changes reach the fallback target
        # on their own: it is one of the incident's alerted targets from now on.
        latest = n
        for m in self.store.notifications(incident_id=n.incident_id, limit=10_000):
            same_target = (m.channel, m.target) == (n.channel, n.target)
            if same_target and m.state in ("pending", "sending") and m.id > latest.id:
                latest = m
        now = self.clock()
        for channel, target in targets:
            self.store.enqueue(
                incident_id=n.incident_id,
                action=latest.action,
                channel=channel,
                target=target,
                route=n.route,
                alert=latest.alert,
                now=now,
                fallback_of=n.id,
            )
        self.store.mark_fallback_sent(n.id)
        log.warning(
            "notification #%s: %s keeps failing (%s); sent by %s instead",
            n.id,
            n.channel,
            why,
            ", ".join(c for c, _ in targets),
        )

    async def _send(self, n: Notification) -> dict:
        """Hand the row to its channel (the one send path: :meth:`Channel.send`)."""
        channel = registry.get(n.channel)
        if channel is None:
            raise TransportError(f"unknown channel {n.channel!r}", permanent=True)
        return await channel.send(self, n)


def _span(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def channel_timeout(settings: Settings, channel: str) -> float:
    """Seconds one send on ``channel`` may take before its client gives up."""
    ch = registry.get(channel)
    return ch.timeout(settings) if ch is not None else 60.0


def _follow_up(channel: str) -> str:
    ch = registry.get(channel)
    if ch is not None and ch.edits_in_place:
        return f"{ch.label()} edits that message"
    return "this one replies in its thread"


def wait_reasons(rows: list[Notification], now: datetime, settings: Settings) -> dict[int, str]:
    """Why each pending or in-flight row has not gone out yet, in words (``watcher outbox``).

    ``rows`` should hold every pending and sending row (a row waits for earlier
    rows of its target). Delivered and dead rows get no reason.
    """
    live = sorted((n for n in rows if n.state in ("pending", "sending")), key=lambda n: n.id)
    out: dict[int, str] = {}
    sending_by_lane: dict[tuple[str, str], Notification] = {}
    first_by_thread: dict[tuple[int, str, str], Notification] = {}
    first_due_by_lane: dict[tuple[str, str], Notification] = {}
    for n in live:
        lane = (n.channel, n.target)
        if n.state == "sending":
            sending_by_lane.setdefault(lane, n)
    for n in live:
        lane = (n.channel, n.target)
        thread = (n.incident_id, n.channel, n.target)
        if n.state == "sending":
            age = (now - n.claimed_at).total_seconds() if n.claimed_at else 0.0
            limit = channel_timeout(settings, n.channel)
            if age > 2 * limit + 5:
                out[n.id] = (
                    f"in flight for {_span(age)}: the {n.channel} server has not answered (hung? the client "
                    f"gives up after {limit:g}s per step); later messages to this target wait"
                )
            else:
                out[n.id] = f"being sent (in flight for {_span(age)})"
        elif n.held and n.not_before > now:
            out[n.id] = f"held by quiet hours until {n.not_before:%Y-%m-%d %H:%M} UTC"
        elif thread in first_by_thread:
            ahead = first_by_thread[thread]
            out[n.id] = (
                f"waiting behind #{ahead.id} (same incident and target: it must go first, "
                f"{_follow_up(n.channel)})"
            )
        elif n.not_before > now:
            if n.last_error:
                out[n.id] = (
                    f"backing off until {n.not_before:%H:%M:%S} UTC (in {_span((n.not_before - now).total_seconds())}) "
                    f"after {n.attempts} failed {'try' if n.attempts == 1 else 'tries'}: {n.last_error}"
                )
            else:
                out[n.id] = f"not before {n.not_before:%Y-%m-%d %H:%M} UTC"
        elif lane in sending_by_lane:
            ahead = sending_by_lane[lane]
            age = (now - ahead.claimed_at).total_seconds() if ahead.claimed_at else 0.0
            out[n.id] = f"waiting: #{ahead.id} to the same target has been in flight for {_span(age)}"
        elif lane in first_due_by_lane:
            out[n.id] = f"due: queued behind #{first_due_by_lane[lane].id} to the same target"
        else:
            out[n.id] = "due: being sent now" + (f" (last error: {n.last_error})" if n.last_error else "")
        first_by_thread.setdefault(thread, n)
        if out[n.id].startswith("due"):
            first_due_by_lane.setdefault(lane, n)
    return out


def stuck_alerts(store, now: datetime, settings: Settings) -> tuple[list[str], dict[str, dict]]:
    """Health's view of the outbox: a reason per channel whose oldest undelivered alert is too old.

    Returns (reasons, details by channel). "Too old" is ``alerts.stuck_after``
    seconds; rows held by quiet hours count from the end of the hours.
    """
    limit = settings.alerts.stuck_after
    reasons: list[str] = []
    details: dict[str, dict] = {}
    for channel, row in sorted(store.oldest_undelivered(now).items()):
        age = max(0.0, (now - row["since"]).total_seconds())
        stuck = age > limit
        details[channel] = {
            "oldest_id": row["id"],
            "target": row["target"],
            "waiting_seconds": round(age, 1),
            "stuck": stuck,
            "last_error": row["last_error"],
        }
        if stuck:
            reasons.append(
                f"{channel}: alerts are not getting through: #{row['id']} to {row['target']} has waited "
                f"{_span(age)} (limit alerts.stuck_after = {limit:g}s)"
                + (f"; last error: {row['last_error']}" if row["last_error"] else "")
            )
    return reasons, details
