"""Prometheus metrics of one app: requests by route and status, latency, and trials by
state read from the database at scrape time (never kept in memory, so several API replicas
agree), from the counter rows its triggers keep rather than by counting every trial; and
how many lease requests this process answered per transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.db import Database
from service.tables import Study, TrialCount


class _DatabaseCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        # This process's grants (service.combining): their ratio is the mean batch size.
        queue = self.db.grant_queue
        yield CounterMetricFamily(
            "hone_lease_grant_batches", "Transactions that answered lease requests", value=queue.batches
        )
        yield CounterMetricFamily(
            "hone_lease_requests_answered",
            "Lease requests answered in those transactions",
            value=queue.answered,
        )
        heartbeats = self.db.heartbeat_queue
        yield CounterMetricFamily(
            "hone_heartbeat_batches",
            "Transactions that extended heartbeated leases",
            value=heartbeats.batches,
        )
        yield CounterMetricFamily(
            "hone_heartbeats_answered", "Heartbeats answered by those transactions", value=heartbeats.answered
        )
        up = GaugeMetricFamily("hone_database_up", "1 when the last scrape could query the database")
        trials = GaugeMetricFamily("hone_trials", "Trials by state, over all studies", labels=["state"])
        studies = GaugeMetricFamily("hone_studies", "Studies by status", labels=["status"])
        try:
            with self.db.reading() as session:
                by_state = select(TrialCount.state, func.sum(TrialCount.trials)).group_by(TrialCount.state)
                for state, count in session.execute(by_state):
                    trials.add_metric([state], int(count))
                for status, count in session.execute(
                    select(Study.status, func.count()).group_by(Study.status)
                ):
                    studies.add_metric([status], count)
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield from (up, trials, studies)


class Metrics:
    """The registry of one app (never the global one, so tests can build many apps)."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hone_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hone_http_request_duration_seconds",
            "Time to the end of the response, by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(db))


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (``/studies/{study_id}``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
