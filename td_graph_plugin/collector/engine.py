"""The collector engine: every tenant x source on its own interval, tenants concurrently.

Records stream page by page (memory does not grow with the number of records); the sink
commits each page's checkpoint only after the output accepted it.  A source that fails does
not stop the others: it is marked ``failing`` and retried with backoff; a licence or
permission refusal marks it ``unlicensed`` / ``forbidden`` and re-checks it rarely.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

import pluggy

from ..catalogue import Catalogue
from ..config.model import Config, SourceSettings, TenantConfig
from ..durations import format_duration
from ..errors import (
    AuthError,
    GraphConditionalAccess,
    GraphForbidden,
    GraphLicenceError,
    GraphPermissionError,
    GraphStopped,
    GraphThrottled,
    GraphUnauthorized,
    LeaseLost,
    OutputError,
    SourceSkipped,
    StateError,
    TdGraphError,
)
from ..metrics import Metrics
from ..plan import TenantPlanner, verdict_for
from ..spec import SourceSpec
from ..state import StateStore
from ..status import DISABLED, FAILING, FORBIDDEN, HELD, OK, STOPPED, UNLICENSED
from ..timeutil import utcnow
from .context import RunStats, SourceRun
from .modes import collector_for
from .resources import Resources
from .sink import Sink

__all__ = ["Engine", "Job", "JobResult"]

log = logging.getLogger("td_graph_plugin.engine")

RECHECK_MIN = 3600.0  # an unlicensed/forbidden source is asked again after 1 h, then 2 h ...
RECHECK_MAX = 24 * 3600.0


@dataclass(frozen=True)
class Job:
    tenant: TenantConfig
    spec: SourceSpec
    settings: SourceSettings

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant.name, self.spec.name)

    def interval(self) -> float:
        return self.spec.duration("interval", self.settings.interval).total_seconds()


@dataclass
class JobResult:
    job: Job
    status: str  # status.py: ok | unlicensed | forbidden | disabled | failing | stopped
    stats: RunStats = field(default_factory=RunStats)
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAILING


class Engine:
    def __init__(
        self,
        config: Config,
        catalogue: Catalogue,
        *,
        state: StateStore,
        sink: Sink,
        metrics: Metrics | None = None,
        pm: pluggy.PluginManager | None = None,
        client_factory: Callable[[TenantConfig], Any] | None = None,
        now: Callable[[], datetime] = utcnow,
        stop: threading.Event | None = None,
        planner: TenantPlanner | None = None,
        formatter: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        app_budgets: Any = None,
    ) -> None:
        self.config = config
        from ..graph.appbudget import AppBudgets  # Graph's per-app limits across tenants; build_runtime: one per process
        self.app_budgets = app_budgets or AppBudgets.for_throttling(config.throttling)
        self.planner = planner
        self.recheck_min = RECHECK_MIN
        self.catalogue = catalogue
        self.state = state
        self.sink = sink
        self.metrics = metrics or Metrics()
        self.pm = pm
        self.now = now
        self.stop = stop or threading.Event()
        self._client_factory = client_factory or self._default_client
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.resources = Resources()
        self._failures: dict[tuple[str, str], int] = {}
        self._rows: dict[tuple[str, str], dict[str, Any] | None] = {}  # status read by _skip_verdict
        self._credential_failing: set[str] = set()  # tenants whose credential failure was logged
        self._fatal: BaseException | None = None
        self._active: dict[tuple[str, str], SourceRun] = {}
        self._active_lock = threading.Lock()
        self.record_filter = self._build_filter()
        self.formatter = formatter

    # --- plan ----------------------------------------------------------------------------
    def jobs(self, *, tenants: Iterable[str] | None = None, sources: Iterable[str] | None = None) -> list[Job]:
        """Every enabled tenant x source, narrowed by ``--tenants`` / ``--sources``."""
        selected = self.catalogue.select(self.config.sources.include, self.config.sources.exclude)
        if sources:
            narrowed = set(s.name for s in self.catalogue.resolve(sources))
            selected = [s for s in selected if s.name in narrowed]
        out = []
        for tenant in self.config.select_tenants(tenants):
            for spec in selected:
                if tenant.cloud not in spec.clouds:
                    log.info("%s/%s: not offered in the %s cloud; skipped", tenant.name, spec.name, tenant.cloud)
                    continue
                job = Job(tenant, spec, self.config.sources.settings.get(spec.name, SourceSettings()))
                self.metrics.source_interval(tenant.name, spec.name, job.interval())  # alerts derive staleness
                out.append(job)
        return out

    # --- clients ---------------------------------------------------------------------------
    def _default_client(self, tenant: TenantConfig) -> Any:
        from ..graph.client import GraphClient
        from ..graph.oidc_cache import TenantDocCache
        from ..graph.ratelimit import Budget, RateLimiter

        budgets = {name: Budget(o.requests, o.per, concurrency=o.concurrency, per_key=(name == "usage_reports"))
                   for name, o in self.config.throttling.items()}
        return GraphClient(tenant, self.config.http, self.metrics, stop=self.stop, limiter=RateLimiter(budgets),
                           app_budgets=self.app_budgets, doc_cache=TenantDocCache(self.state, tenant.name))

    def client(self, tenant: TenantConfig) -> Any:
        with self._clients_lock:
            if tenant.name not in self._clients:
                self._clients[tenant.name] = self._client_factory(tenant)
            return self._clients[tenant.name]

    def close(self) -> None:
        self.resources.close()
        with self._clients_lock:
            for c in self._clients.values():
                closer = getattr(c, "close", None)
                if closer:
                    closer()
            self._clients.clear()

    def _build_filter(self) -> Callable[[str, str, dict[str, Any]], bool] | None:
        if self.pm is None or not self.pm.hook.td_graph_filter_record.get_hookimpls():
            return None
        hook = self.pm.hook.td_graph_filter_record

        def keep(tenant: str, source: str, record: dict[str, Any]) -> bool:
            return all(r is not False for r in hook(tenant=tenant, source=source, record=record))

        return keep

    # --- one job ---------------------------------------------------------------------------
    def run_job(self, job: Job) -> JobResult:
        """Run one job; a lost tenant lease (cluster) ends it quietly: not a failure, no status
        written, the new owner resumes from the last committed page."""
        started = time.monotonic()
        try:
            return self._run_job(job, started)
        except LeaseLost as exc:
            with self._active_lock:
                self._active.pop(job.key, None)
            log.warning("%s/%s: lease lost, dropped (%s)", job.tenant.name, job.spec.name, exc)
            return JobResult(job, STOPPED, RunStats(), exc, time.monotonic() - started)

    def busy(self, tenant: str) -> bool:
        """Whether a job of ``tenant`` is running (the cluster hands a tenant over once idle)."""
        with self._active_lock:
            return any(key[0] == tenant for key in self._active)

    def _run_job(self, job: Job, started: float) -> JobResult:
        tenant, spec = job.tenant.name, job.spec.name
        run = SourceRun(
            tenant=job.tenant,
            spec=job.spec,
            settings=job.settings,
            client=None,
            state=self.state,
            sink=self.sink,
            metrics=self.metrics,
            stop=self.stop,
            record_filter=self.record_filter,
            formatter=self.formatter,
            now=self.now,
            config=self.config,
            resources=self.resources,
        )
        with self._active_lock:
            self._active[job.key] = run
        try:
            if job.spec.reads_graph:
                run.client = self.client(job.tenant)
                skip = self._skip_verdict(job, run.client)
                if skip is not None:
                    return self._finish(job, skip[0], run.stats, SourceSkipped(skip[1]), started)
            collector_for(job.spec).collect(run)
        except LeaseLost:
            raise
        except (StateError, OutputError) as exc:
            self._fatal = exc
            self.stop.set()
            return self._finish(job, FAILING, run.stats, exc, started)
        except GraphStopped:
            return self._finish(job, STOPPED, run.stats, None, started)
        except GraphLicenceError as exc:
            if self.planner is not None:
                self.planner.invalidate(tenant)  # re-read the licences on demand
            return self._finish(job, UNLICENSED, run.stats, exc, started)
        except (GraphPermissionError, GraphConditionalAccess, GraphForbidden) as exc:
            return self._finish(job, FORBIDDEN, run.stats, exc, started)
        except TdGraphError as exc:
            return self._finish(job, FAILING, run.stats, exc, started)
        except Exception as exc:  # a bug must not take the other sources down
            log.exception("%s/%s: unexpected error", tenant, spec)
            self.metrics.error(tenant, spec, "internal")
            return self._finish(job, FAILING, run.stats, exc, started)
        return self._finish(job, OK, run.stats, None, started)

    def _skip_verdict(self, job: Job, client: Any) -> tuple[str, str] | None:
        """(status, reason) when the job must not send requests now, else None.

        A source the plan says is unlicensed/forbidden sends nothing until its re-check time,
        then one probing attempt; a source that failed that way at run time waits likewise
        unless a newer discovery says the licence or consent has appeared.  A source not offered
        in the tenant's cloud is skipped before any request (discovery included).  Once a probe
        of a source the plan calls unlicensed succeeded (its status row is ``ok``), Graph's
        answer beats our plan-name table: it runs until Graph itself answers with a licence error.
        """
        if self.planner is None:
            return None
        offered = verdict_for(job.spec, job.tenant.cloud, None)
        if offered.status == DISABLED:
            return (DISABLED, offered.reason)
        tenant, spec = job.tenant.name, job.spec.name
        d = self.planner.discovery(tenant, client)
        verdict = verdict_for(job.spec, job.tenant.cloud, d)
        row = self._rows[job.key] = self.state.source_status(tenant, spec)  # _finish reads it
        held = row is not None and row["state"] in HELD
        waiting = held and (row["next_check"] or 0) > time.time()
        if verdict.status == DISABLED:
            return (DISABLED, verdict.reason)
        if verdict.status == UNLICENSED and row is not None and row["state"] == OK:
            return None  # licensed after all: a probe succeeded and Graph has not said otherwise
        if not verdict.runs:
            if waiting or not held:
                return (verdict.status, verdict.reason)
            return None  # re-check time: one probing attempt
        if waiting and d.at < row["since"]:
            return (row["state"], row["reason"] or "")
        return None

    def active_runs(self) -> list[SourceRun]:
        """Runs in progress (for the progress display): their ``stats`` move page by page."""
        with self._active_lock:
            return list(self._active.values())

    def _finish(self, job: Job, status: str, stats: RunStats, error: BaseException | None, started: float) -> JobResult:
        tenant, spec = job.tenant.name, job.spec.name
        with self._active_lock:
            self._active.pop(job.key, None)
        read, row = job.key in self._rows, self._rows.pop(job.key, None)  # this job's status row
        seconds = time.monotonic() - started
        if status == STOPPED:
            log.info("%s/%s: stopped after %d records; resumes from the checkpoint", tenant, spec, stats.records)
            return JobResult(job, status, stats, None, seconds)
        self.metrics.set_state(tenant, spec, status)
        stopped = self.stop.is_set() and self._fatal is None and status == OK
        if status == OK:
            if job.spec.reads_graph:
                self._credential_failing.discard(tenant)
            if self._failures.pop(job.key, None) is not None or self.planner is not None:
                row = row if read else self.state.source_status(tenant, spec)
                if row is not None and row["state"] != OK:
                    self.state.set_source_status(tenant, spec, OK, None, None)
                    log.info("%s/%s: collecting again (was %s)", tenant, spec, row["state"])
            self.metrics.success(tenant, spec)
            window = f" (window {stats.window[0]} .. {stats.window[1]})" if stats.window[0] else ""
            # Quiet polls (nothing new) at debug: 1,000 tenants x 27 sources would flood info.
            log.log(
                logging.INFO if stats.records or stats.dropped or stopped else logging.DEBUG,
                "%s/%s: %d records in %d pages%s%s%s", tenant, spec, stats.records, stats.pages,
                f", {stats.dropped} dropped by filters" if stats.dropped else "",
                window,
                " (stopped early; resumes from the checkpoint)" if stopped else "",
            )
        else:
            self._failures[job.key] = self._failures.get(job.key, 0) + 1
            if status in HELD:
                delay = self._recheck_delay(job)
                row = self.state.source_status(tenant, spec)
                if isinstance(error, SourceSkipped) and row is not None and row["state"] == status and (row["next_check"] or 0) > time.time():
                    log.debug("%s/%s: still %s (%s)", tenant, spec, status, error)
                else:
                    self.state.set_source_status(tenant, spec, status, str(error), time.time() + delay)
                    log.warning(
                        "%s/%s: skipped, %s: %s; re-checked in %s, other sources go on",
                        tenant, spec, status, error, format_duration(timedelta(seconds=round(delay))),
                    )
            elif status == DISABLED:
                self._failures.pop(job.key, None)
                self.state.set_source_status(tenant, spec, DISABLED, str(error), None)
                log.info("%s/%s: skipped: %s", tenant, spec, error)
            else:
                log.log(*self._failure_log(tenant, error), tenant, spec, error)
                result = JobResult(job, status, stats, error, seconds)
                if not isinstance(error, StateError):  # `td-graph status` reads it; a broken state cannot
                    self.state.set_source_status(tenant, spec, FAILING, str(error), time.time() + self.next_delay(result))
                return result
        return JobResult(job, status, stats, error, seconds)

    def _failure_log(self, tenant: str, error: BaseException | None) -> tuple[int, str]:
        """A failing credential fails every source of its tenant on every poll: error once per
        tenant, then debug until one of its Graph sources succeeds again."""
        if not isinstance(error, (AuthError, GraphUnauthorized)):
            return logging.ERROR, "%s/%s: failed: %s"
        with self._active_lock:
            first = tenant not in self._credential_failing
            self._credential_failing.add(tenant)
        if first:
            return logging.ERROR, "%s/%s: failed: %s (the tenant's credential: its other sources are logged at debug until one succeeds)"
        return logging.DEBUG, "%s/%s: failed: %s"

    def _recheck_delay(self, job: Job) -> float:
        n = self._failures.get(job.key, 1)
        return min(RECHECK_MAX, self.recheck_min * 2 ** (n - 1))

    def next_delay(self, result: JobResult) -> float:
        """Seconds until the job runs again, from its outcome."""
        interval = result.job.interval()
        if result.status == OK:
            return interval
        if isinstance(result.error, LeaseLost):
            return min(interval, 1.0)  # runs again once (if ever) this replica owns the tenant
        if result.status in HELD:
            return self._recheck_delay(result.job)
        if result.status == DISABLED:
            return RECHECK_MAX
        if isinstance(result.error, GraphThrottled) and result.error.retry_after:
            return max(result.error.retry_after, 1.0)
        n = self._failures.get(result.job.key, 1)
        return min(interval, 3600.0, 30.0 * 2 ** (n - 1))

    @property
    def fatal(self) -> BaseException | None:
        return self._fatal

    # --- loops -----------------------------------------------------------------------------
    def run_once(self, jobs: list[Job]) -> list[JobResult]:
        """One pass over ``jobs`` with up to ``workers`` running at once."""
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.config.workers, len(jobs)), thread_name_prefix="td-graph") as pool:
            futures = [pool.submit(self.run_job, job) for job in _interleave_tenants(jobs)]
            return [f.result() for f in futures]

    def run_forever(self, jobs: list[Job], owns: Callable[[str], bool] | None = None) -> None:
        """Run every job on its interval until ``stop`` is set; state is saved per page.
        ``owns(tenant)`` (a cluster replica): a due job of a tenant this replica does not hold
        is looked at again every second instead of run, so a tenant gained starts within a
        second and a tenant lost starts nothing new (None: every tenant is ours).  Jobs go to the
        pool only while a worker is free, so ownership is decided when a job starts, never from
        a backlog queued before a hand-over."""
        due: list[tuple[float, int, Job]] = [(time.monotonic(), i, j) for i, j in enumerate(_interleave_tenants(jobs))]
        heapq.heapify(due)
        running: dict[tuple[str, str], Future[JobResult]] = {}
        lock = threading.Lock()
        seq = len(due)
        workers = max(1, min(self.config.workers, len(jobs)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="td-graph") as pool:
            while not self.stop.is_set():
                now = time.monotonic()
                ready: list[Job] = []
                with lock:
                    while due and due[0][0] <= now and len(running) + len(ready) < workers:
                        _, _, job = heapq.heappop(due)
                        if owns is not None and not owns(job.tenant.name):
                            seq += 1
                            heapq.heappush(due, (now + 1.0, seq, job))
                        elif job.key not in running:
                            ready.append(job)
                for job in ready:
                    if self.stop.is_set():
                        break
                    fut = pool.submit(self.run_job, job)
                    with lock:
                        running[job.key] = fut

                    def done(f: Future[JobResult], job: Job = job) -> None:
                        nonlocal seq
                        with lock:
                            running.pop(job.key, None)
                            try:
                                delay = self.next_delay(f.result())
                            except Exception:
                                delay = job.interval()
                            seq += 1
                            heapq.heappush(due, (time.monotonic() + delay, seq, job))

                    fut.add_done_callback(done)
                with lock:
                    wait = (due[0][0] - time.monotonic()) if due else 1.0
                self.stop.wait(timeout=min(max(wait, 0.05), 1.0))  # every worker busy: 0.05 s
            # Stop requested: let in-flight pages finish and commit; collectors check stop per page.
        self.close()


def _interleave_tenants(jobs: list[Job]) -> list[Job]:
    """Round-robin across tenants so one big tenant does not hold every worker first."""
    by_tenant: dict[str, list[Job]] = {}
    for j in jobs:
        by_tenant.setdefault(j.tenant.name, []).append(j)
    out: list[Job] = []
    queues = list(by_tenant.values())
    while queues:
        for q in list(queues):
            out.append(q.pop(0))
            if not q:
                queues.remove(q)
    return out
