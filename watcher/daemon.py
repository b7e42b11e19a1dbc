"""The long-running watcher: every source on its own schedule, until SIGTERM.

APScheduler runs one job per source at its interval, with jitter so that sources
sharing an interval are not polled in lock-step. A job that is still running when
its next turn comes is skipped, not stacked (``max_instances=1``, ``coalesce``).
On SIGTERM/SIGINT the scheduler stops taking new work, in-flight polls get a grace
period to finish (each is bounded by the fetch timeout anyway), then the HTTP
client and the database are closed.

Several instances on one PostgreSQL database form a cluster (see
:mod:`watcher.store.leader`): every instance polls and probes from its location;
only the one holding the leader lease merges findings into incidents, sends the
outbox, runs reminders, retention, the report and the billed canary prompts. The
lease is checked every ``failover_timeout / 6`` seconds in a worker thread; on
taking over, the new leader puts the outbox rows its predecessor left in flight back
to pending and fences its own claims with the new epoch. On SQLite the lease is a
:class:`~watcher.store.leader.SoloLease` that always leads.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from watcher.catalog import SourceSpec, VendorSpec
from watcher.config import Settings
from watcher.fetch import make_client
from watcher.pipeline import Pipeline, PollResult
from watcher.polls import PollScheduler
from watcher.store.base import StoreError
from watcher.store.roles import Store

if TYPE_CHECKING:  # imported when probes are configured, not at start
    from watcher.probes.service import ProbeService

log = logging.getLogger("watcher.daemon")

FIRST_POLL_SPREAD = 5.0
"""Seconds over which the first polls are spread at start."""


class Daemon:
    def __init__(self, settings: Settings, vendors: list[VendorSpec], store: Store, *, lease=None):
        self.settings = settings
        self.lease = lease
        """The leader lease; opened in :meth:`run` when not given."""
        self._was_leading: bool | None = None
        self.vendors = vendors
        self.store = store
        self.sources: list[SourceSpec] = [s for v in vendors for s in v.sources]
        self.stopping = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        self._background: set[asyncio.Task] = set()
        """One-off work started by the daemon (re-classifying on upgrade), kept referenced until done."""
        self._sem: asyncio.Semaphore | None = None
        self.pipeline: Pipeline | None = None
        self.probes: ProbeService | None = None
        self.cluster = False
        self.name: str | None = None
        self.location: str | None = None
        self.runtime: dict = {"scheduler_running": False, "polls": 0}
        """Live facts for /healthz and /metrics (see watcher.web.context.WebContext.runtime)."""
        from watcher.metrics import PollMetrics

        self.runtime["metrics"] = PollMetrics()
        self.polls = 0
        from watcher.alerts.deliver import Deliverer, Transports
        from watcher.alerts.engine import AlertEngine

        self.deliverer = Deliverer(settings, store, Transports.from_settings(settings))
        self.engine = AlertEngine(settings, store, vendors, on_enqueue=self.deliverer.wake.set)

    def request_stop(self) -> None:
        self.stopping.set()

    async def _job(self, spec: SourceSpec) -> PollResult | None:
        if self.stopping.is_set() or self.pipeline is None or self._sem is None:
            return None
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with self._sem:
                if self.stopping.is_set():
                    return None
                t0 = time.monotonic()
                result = await self.pipeline.poll(spec)
                self.runtime["metrics"].observe_result(result, time.monotonic() - t0)
                self.polls += 1
                self.runtime["polls"] = self.polls
                return result  # its alerts were queued with its incidents (Pipeline.plan_alerts)
        except asyncio.CancelledError:
            # Only at shutdown, after the grace period. Store writes have no await
            # inside them, so a cancelled poll never leaves a half-written incident.
            log.info("%s: poll abandoned at shutdown", spec.key)
            return None
        finally:
            if task is not None:
                self._inflight.discard(task)

    def _plan_alerts(self, changes) -> Callable[[], None] | None:
        """Before the transaction that saves the incidents: the alerts' slow part (routing, playbook...);
        returns the writes, run inside that transaction. A database error undoes the incidents with
        their alerts (the next poll does both again); any other error is an alerting bug and must not
        keep the incident from being recorded."""
        try:
            writes = self.engine.plan(changes)
        except StoreError:
            raise
        except Exception:
            log.exception("could not plan alerts")
            return None

        def write() -> None:
            try:
                writes()
            except StoreError:
                raise
            except Exception:
                log.exception("could not queue alerts")

        return write

    @staticmethod
    def _alerts_planned_by_pipeline(changes) -> None:
        """The probe service's hook: nothing to do, the pipeline's ``plan_alerts`` queued them."""

    async def _probe_job(self, vendor: str, scheduler: AsyncIOScheduler) -> None:
        if self.stopping.is_set() or self.probes is None:
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            out = await self.probes.probe(vendor)
        except asyncio.CancelledError:
            return
        except Exception:  # a probe bug must not stop the daemon or the other vendors
            log.exception("%s: probe run failed", vendor)
            return
        finally:
            if task is not None:
                self._inflight.discard(task)
        # variable sampling: faster while a detector is in warning, back to normal after
        interval = self.probes.runner.interval_for(out)
        job = scheduler.get_job(f"probe:{vendor}")
        if job is not None and getattr(job.trigger, "interval", None) != timedelta(seconds=interval):
            job.reschedule(IntervalTrigger(seconds=interval, timezone=UTC))
            log.info("%s: probing every %ds", vendor, int(interval))

    async def _network_job(self) -> None:
        if self.stopping.is_set() or self.probes is None:
            return
        try:
            await self.probes.check_network()
        except Exception:
            log.exception("network check failed")

    def _start_probes(self, scheduler: AsyncIOScheduler, client, now: datetime) -> None:
        """Probe jobs per vendor with a key configured, plus the network check they rely on."""
        from watcher.probes.runner import ProbeRunner
        from watcher.probes.service import ProbeService

        runner = ProbeRunner(
            self.settings, self.store, self.vendors, client, location=self.location if self.cluster else None
        )
        view = None
        if self.cluster:
            from watcher.probes.service import ClusterView, default_window

            c = self.settings.cluster
            view = ClusterView(
                window=c.confirm_window or default_window(self.settings.probes.interval, c.failover_timeout),
                min_locations=c.min_locations,
            )
        elif not runner.targets:
            return
        # in a cluster the service exists even with nothing to probe here: as leader it still
        # declares the outages other locations' probes confirm
        self.probes = ProbeService(runner, self.pipeline, self._alerts_planned_by_pipeline, cluster=view)
        if not runner.targets:
            return
        p = self.settings.probes
        for vid in runner.targets:
            scheduler.add_job(
                self._probe_job,
                IntervalTrigger(seconds=p.interval, timezone=UTC),
                args=[vid, scheduler],
                id=f"probe:{vid}",
                max_instances=1,
                coalesce=True,
                next_run_time=now + timedelta(seconds=random.uniform(1, FIRST_POLL_SPREAD + 1)),
            )
        scheduler.add_job(
            self._network_job,
            IntervalTrigger(seconds=60, timezone=UTC),
            id="probe:network",
            max_instances=1,
            coalesce=True,
        )
        log.info("probing %d vendor API(s): %s", len(runner.targets), ", ".join(runner.targets))

    def leading(self) -> bool:
        return self.lease is None or self.lease.leading

    def _on_leadership(self, leads: bool) -> None:
        """Called after each lease check, on the event loop: act on a change of role."""
        self.runtime["leader"] = leads
        if leads == self._was_leading:
            return
        first = self._was_leading is None
        self._was_leading = leads
        if leads:
            epoch = getattr(self.lease, "epoch", None)
            if self.store.clustered:
                self.store.fence_epoch = epoch
            # what the previous leader (or our own previous run) left claimed goes out again
            try:
                self.deliverer.recover()
            except Exception:
                log.exception("could not recover the outbox")
            self.deliverer.wake.set()
            self._background.add(task := asyncio.get_running_loop().create_task(self._reclassify()))
            task.add_done_callback(self._background.discard)
            if self.cluster:
                log.warning("this instance leads the cluster now (epoch %s): alerting from here", epoch)
        elif not first:
            self.store.fence_epoch = None  # a follower's own writes (its fetch state) go on
            log.warning("this instance is a follower now: watching, not alerting")
        elif self.cluster:
            log.info("joined the cluster as a follower: watching, not alerting")

    async def _reclassify(self) -> None:
        """A new classifier model re-reads the incidents already stored (once per model, on the leader)."""
        if self.pipeline is None:
            return
        try:
            await self.pipeline.reclassify_stored()
        except Exception:
            log.exception("could not re-classify the stored incidents with the new classifier model")

    async def _cluster_job(self) -> None:
        if self.stopping.is_set() or self.lease is None:
            return
        try:
            leads = await asyncio.to_thread(self.lease.tick)
        except Exception:  # the lease never raises for database trouble; anything else is a bug
            log.exception("leader lease check failed")
            leads = False
        self._on_leadership(leads and self.lease.leading)
        if leads and self.probes is not None:
            try:
                await self.probes.reconfirm(datetime.now(UTC))
            except Exception:
                log.exception("probe confirmation across locations failed")

    def _tick(self) -> None:
        if not self.leading():
            return
        try:
            self.engine.tick()
        except Exception:
            log.exception("reminder/escalation check failed")

    def _start_web(self):
        w = self.settings.web
        if not w.enabled:
            return None
        from watcher.config import read_secret
        from watcher.web.app import create_app, make_server
        from watcher.web.context import WebContext

        s = self.settings.slack
        self.runtime["deliverer"] = self.deliverer
        self.runtime["probes"] = self.probes
        ctx = WebContext(
            settings=self.settings, store=self.store, vendors=self.vendors, engine=self.engine, runtime=self.runtime
        )
        routes, middleware = web_modules(ctx)
        app = create_app(
            self.engine,
            signing_secret=read_secret(s.signing_secret, s.signing_secret_file, "slack.signing_secret"),
            ack_secret=self.engine.ack_secret,
            extra_routes=routes,
            middleware=middleware,
        )
        from watcher.doctor import busy_port_fix, port_problem

        problem = port_problem(w.host, w.port) if w.port else None
        if problem is not None:
            log.error(
                "web app not started: web.port %d on %s: %s. Fix: %s. Watching and alerts go on; Slack buttons, "
                "acknowledge links, the board and /healthz do not",
                w.port,
                w.host,
                problem,
                busy_port_fix(w.port),
            )
            return None
        server = make_server(app, w.host, w.port, max_connections=w.max_connections, header_timeout=w.header_timeout)
        task = asyncio.create_task(server.serve(), name="web")
        task.add_done_callback(self._web_done)
        log.info("web app on http://%s:%d (Slack interactivity at /slack/interactivity)", w.host, w.port)
        return server, task

    async def _start_socket_mode(self, loop: asyncio.AbstractEventLoop):
        """Slack Socket Mode when an app-level token is set: buttons with no public URL."""
        from watcher.config import read_secret

        s = self.settings.slack
        app_token = read_secret(s.app_token, s.app_token_file, "slack.app_token")
        if not app_token:
            return None
        from watcher.alerts.socket_mode import SocketModeBridge

        bridge = SocketModeBridge(
            self.engine,
            loop,
            app_token,
            base_url=s.base_url,
            bot_token=read_secret(s.token, s.token_file, "slack.token"),
        )
        await asyncio.to_thread(bridge.start)  # connect() does blocking network I/O
        return bridge

    def _first_round(self) -> None:
        """One report after the first polls, from the database: also after a restart, when every
        source already failed before and no per-source line is logged again."""
        if self.pipeline is not None:
            self.pipeline.quiet_until = None
        keys = {spec.key for spec in self.sources}
        records = [r for r in self.store.sources() if r.key in keys]
        failing = [r for r in records if r.error]
        answered = sum(1 for r in records if r.last_success_at and not r.error)
        total = len(keys)
        if not failing:
            log.info("first round: %d of %d sources answered", answered, total)
            return
        kinds: dict[str, int] = {}
        for r in failing:
            kinds[r.error_kind or "error"] = kinds.get(r.error_kind or "error", 0) + 1
        why = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        example = f"{failing[0].key}: {failing[0].error}"
        if answered == 0:
            log.error(
                "first round: NONE of %d sources answered (%s; e.g. %s). watcher sees nothing: check this "
                "machine's network, DNS or proxy; `watcher doctor` tells what fails",
                total,
                why,
                example,
            )
            return
        names = ", ".join(r.key for r in failing[:8]) + (f" and {len(failing) - 8} more" if len(failing) > 8 else "")
        log.warning(
            "first round: %d of %d sources answered; %d failing (%s): %s (first: %s; `watcher status` says why)",
            answered,
            total,
            len(failing),
            why,
            names,
            failing[0].error,
        )

    def _web_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            from watcher.doctor import busy_port_fix

            w = self.settings.web
            log.error(
                "web app stopped on %s:%d (%s): %s (watching goes on)",
                w.host,
                w.port,
                task.exception() or type(task.exception()).__name__,
                busy_port_fix(w.port),
            )

    async def run(self, *, install_signals: bool = True, grace: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        _raise_fd_limit()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        poll = self.settings.poll
        from watcher.store.leader import identity, open_lease

        self.name, self.location = identity(self.settings)
        if self.lease is None:
            self.lease = await asyncio.to_thread(
                open_lease, self.store, self.name, self.location, timeout=self.settings.cluster.failover_timeout
            )
        self.cluster = getattr(self.lease, "shared", True)
        self.runtime.update(instance=self.lease.name, location=self.location, cluster=self.cluster)
        self.deliverer.may_send = self.leading
        self._sem = asyncio.Semaphore(poll.concurrency)
        client = make_client(user_agent=poll.user_agent, max_connections=poll.concurrency * 2)
        self.pipeline = Pipeline(
            self.store, client, self.settings, self.vendors, lease=self.lease, plan_alerts=self._plan_alerts
        )
        # Our own log lines say what changed; APScheduler's per-job chatter would be one line per poll.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
        now = datetime.now(UTC)
        # First polls spread so that at most ~50 start per second: thousands of sources must
        # not all fire in the same few seconds, every interval, for the life of the process.
        spread = max(FIRST_POLL_SPREAD, len(self.sources) / 50)
        # The first round is summed up in one report (see _first_round), not a line per failing source.
        first_round = timedelta(seconds=min(spread, 300) + poll.timeout + 2)
        self.pipeline.quiet_until = now + first_round
        scheduler.add_job(self._first_round, DateTrigger(run_date=now + first_round, timezone=UTC), id="first-round")
        # The sources' polls run from one heap (watcher.polls), not one APScheduler job each: with
        # 20,000 sources each run and the start-up must not cost more with every source added.
        polls = PollScheduler(self._job, limit=poll.concurrency)
        t_loop = loop.time()
        for spec in self.sources:
            polls.add(
                spec,
                interval=spec.interval,
                jitter=spec.interval * poll.jitter,
                first_in=random.uniform(0, min(spread, spec.interval)),
                now=t_loop,
            )
        scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=30, timezone=UTC),
            id="alerts:tick",
            max_instances=1,
            coalesce=True,
        )
        self._start_probes(scheduler, client, now)
        from watcher import housekeeping
        from watcher.web.context import WebContext

        self.runtime["deliverer"], self.runtime["probes"] = self.deliverer, self.probes
        ops_ctx = WebContext(self.settings, self.store, self.vendors, self.engine, runtime=self.runtime)
        housekeeping.schedule(
            scheduler,
            ctx=ops_ctx,
            client=client,
            transports=self.deliverer.transports,
            now=now,
            leading=self.leading,
        )
        if self.cluster:
            # the first lease check before anything else: a follower must not send or merge
            self._on_leadership(await asyncio.to_thread(self.lease.tick))
            scheduler.add_job(
                self._cluster_job,
                IntervalTrigger(seconds=self.lease.tick_interval, timezone=UTC),
                id="cluster:lease",
                max_instances=1,
                coalesce=True,
            )
        else:
            self._on_leadership(True)
        deliver_task = asyncio.create_task(self.deliverer.run(self.stopping), name="deliver")
        web = self._start_web()
        socket_mode = await self._start_socket_mode(loop)
        scheduler.start()
        # What start-up built (settings, catalog, specs: about a million objects at 20,000 sources) lives as
        # long as the process: frozen, the collector's full passes stop walking it at every run (issue 18).
        gc.collect()  # garbage first: what is frozen is never collected
        gc.freeze()
        polls_task = asyncio.create_task(polls.run(self.stopping), name="polls")
        self.runtime["scheduler_running"] = True
        from watcher import systemd

        wd = systemd.watchdog_interval()
        if wd:
            scheduler.add_job(
                lambda: systemd.notify("WATCHDOG=1"), IntervalTrigger(seconds=wd, timezone=UTC), id="watchdog"
            )
        systemd.notify("READY=1")
        log.info(
            "watching %d vendors through %d sources (database %s)%s",
            len(self.vendors),
            len(self.sources),
            self.store.path or self.store.where,
            f"; instance {self.name!r} at {self.location!r}, {'leader' if self.leading() else 'follower'}"
            if self.cluster
            else "",
        )
        try:
            await self.stopping.wait()
        finally:
            log.info("stopping: %d poll(s) in flight", len(self._inflight))
            systemd.notify("STOPPING=1")
            self.runtime["scheduler_running"] = False
            scheduler.pause()  # no new polls; the running ones may finish
            polls.paused = True
            await asyncio.wait({polls_task}, timeout=1)
            pending = list(self._inflight)
            if pending:
                _done, still = await asyncio.wait(
                    pending, timeout=grace if grace is not None else poll.timeout + 1
                )
                for t in still:
                    t.cancel()
                if still:
                    await asyncio.wait(still, timeout=2)
            scheduler.shutdown(wait=False)
            if socket_mode is not None:
                await asyncio.to_thread(socket_mode.close)
            if web is not None:
                server, web_task = web
                server.should_exit = True
                await asyncio.wait({web_task}, timeout=5)
            # the sender finishes the send in progress (bounded by the transports' timeouts)
            _done, late = await asyncio.wait({deliver_task}, timeout=20)
            for t in late:
                t.cancel()
            await client.aclose()
            if self.cluster:
                # hand the lease over now rather than after the failover timeout
                await asyncio.to_thread(self.lease.close)
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            log.info("stopped after %d polls", self.polls)


def web_modules(ctx) -> tuple[list, list]:
    """Routes and middleware of the optional web modules (board, API, operations) that are present."""
    import importlib

    routes: list = []
    middleware: list = []
    for name in ("watcher.web.ops", "watcher.web.api", "watcher.web.board"):
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        routes += mod.routes(ctx)
    try:
        auth = importlib.import_module("watcher.web.auth")
    except ModuleNotFoundError as e:
        if e.name != "watcher.web.auth":
            raise
    else:
        middleware += auth.middleware(ctx)
    return routes, middleware


async def poll_all_once(settings: Settings, vendors: list[VendorSpec], store: Store) -> list[PollResult]:
    """Poll every source once, concurrently (bounded), for ``watcher check --once``."""
    poll = settings.poll
    sem = asyncio.Semaphore(poll.concurrency)
    async with make_client(user_agent=poll.user_agent, max_connections=poll.concurrency * 2) as client:
        pipeline = Pipeline(store, client, settings, vendors)

        async def one(spec: SourceSpec) -> PollResult:
            async with sem:
                return await pipeline.poll(spec)

        return list(await asyncio.gather(*(one(s) for v in vendors for s in v.sources)))


def _raise_fd_limit() -> None:
    """Lift the soft limit on open files to the hard one (often 1,024 of 524,288): the web app's
    connections and every poll share it. The web app's own cap (web.max_connections) stays below."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
