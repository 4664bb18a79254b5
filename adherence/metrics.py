"""Metrics for ``/metrics``, through ``prometheus_client``.

Two kinds of figures:

* events counted as they happen (records, requests, ticks, purges): ``METRICS``,
  one per process, which the journal, the runner and retention update by name
  (``METRICS.inc``/``observe``). Counters are exact integers whatever their size
  (the library prints ``1234567.0``, never ``1.23457e+06``, which broke ``rate()``).
* state read at scrape time from one engine (open exceptions by severity, age
  of the newest record, database and WAL size, free disk): ``EngineCollector``.

Each app gets its own ``CollectorRegistry`` (``registry_for``) holding both plus the
process collectors, never the library's global one: tests build many apps in one
process, and the global registry refuses a second metric of the same name.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger(__name__)

# ``*_created`` series double every counter's series for a timestamp nobody alerts on.
disable_created_metrics()

# Webhook answers are milliseconds; a slow disk or a big envelope shows in the upper buckets.
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# A tick is tens to hundreds of milliseconds; near the evaluation interval (15 s) it is late.
TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)

# name: (kind, help, label names, buckets)
SPECS: dict[str, tuple[str, str, tuple[str, ...], tuple | None]] = {
    "adherence_records_accepted_total": ("counter", "Feed records journaled.", (), None),
    "adherence_records_duplicate_total": ("counter", "Feed records acknowledged as duplicates.", (), None),
    "adherence_records_rejected_total": ("counter", "Feed records kept as rejected (unattributable).", (), None),
    "adherence_rejected_bodies_total": ("counter", "Feed bodies rejected whole (bad JSON or envelope).", (), None),
    "adherence_webhook_requests_total": ("counter", "Webhook requests answered, by status.", ("status",), None),
    "adherence_auth_failures_total": ("counter", "Requests refused by authentication, by surface.", ("surface",), None),
    "adherence_login_throttled_total": ("counter", "Sign-ins refused with 429 after repeated failures.", (), None),
    "adherence_ticks_total": ("counter", "Evaluator ticks run.", (), None),
    "adherence_tick_errors_total": ("counter", "Evaluator ticks that failed.", (), None),
    "adherence_journal_purged_total": ("counter", "Journal rows deleted by retention.", (), None),
    "adherence_rejected_purged_total": ("counter", "Rejected rows deleted by retention.", (), None),
    "adherence_notifications_enqueued_total": ("counter", "Notification outbox changes decided (new or corrected entries).", (), None),
    "adherence_notifications_sent_total": ("counter", "Notifications delivered, by channel type.", ("channel",), None),
    "adherence_notification_failures_total": ("counter", "Failed delivery attempts, by channel type.", ("channel",), None),
    "adherence_notifications_dead_total": ("counter", "Notifications dead-lettered after their last attempt.", (), None),
    "adherence_webhook_duration_seconds": ("histogram", "Time to answer a webhook request (any feed receiver).", (), WEBHOOK_BUCKETS),
    "adherence_tick_duration_seconds": ("histogram", "Duration of evaluator ticks.", (), TICK_BUCKETS),
    "adherence_tick_agents": ("gauge", "Agents evaluated in the last tick.", (), None),
    "adherence_live_agents": ("gauge", "Agents held in live state.", (), None),
    "adherence_feed_silence_seconds": ("gauge", "Seconds since the last record (or refused body) was received.", (), None),
    "adherence_feed_silent": ("gauge", "1 while no record has arrived for feed.silence_after with agents scheduled.", (), None),
}


class Metrics:
    """The process's event metrics, updated by name so callers need not hold metric objects."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._metrics: dict[str, object] = {}
        for name, (kind, help_text, labels, buckets) in SPECS.items():
            if kind == "counter":
                # the library appends _total itself
                metric = Counter(name.removesuffix("_total"), help_text, labels, registry=self.registry)
            elif kind == "histogram":
                metric = Histogram(name, help_text, labels, buckets=buckets, registry=self.registry)
            else:
                metric = Gauge(name, help_text, labels, registry=self.registry)
            self._metrics[name] = metric

    def _child(self, name: str, labels: dict[str, str], kind: str):
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._declare(name, tuple(sorted(labels)), kind)
        return metric.labels(**{k: str(v) for k, v in labels.items()}) if labels else metric

    def _declare(self, name: str, labels: tuple[str, ...], kind: str):
        """A metric counted somewhere but missing from SPECS: exposed anyway (a new counter must never
        turn a webhook into a 500), with a warning so it gets its help text."""
        with self._lock:
            if name in self._metrics:
                return self._metrics[name]
            log.warning("metric %s is not declared in adherence.metrics.SPECS", name)
            help_text = "Undeclared: see adherence.metrics.SPECS."
            if kind == "counter":
                metric = Counter(name.removesuffix("_total"), help_text, labels, registry=self.registry)
            elif kind == "histogram":
                metric = Histogram(name, help_text, labels, registry=self.registry)
            else:
                metric = Gauge(name, help_text, labels, registry=self.registry)
            SPECS.setdefault(name, (kind, help_text, labels, None))
            self._metrics[name] = metric
            return metric

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        if value:
            self._child(name, labels, "counter").inc(value)

    def observe(self, name: str, value: float, **labels: str) -> None:
        self._child(name, labels, "histogram").observe(value)

    def set(self, name: str, value: float, **labels: str) -> None:
        """A gauge's value; for a histogram, one observation (``runner`` reports each tick's duration
        with ``set``: the distribution of ticks matters, not only the last one)."""
        if SPECS.get(name, ("gauge",))[0] == "histogram":
            self.observe(name, value, **labels)
        else:
            self._child(name, labels, "gauge").set(value)

    def get(self, name: str, **labels: str) -> float:
        """A counter's or gauge's current value (a histogram's count); 0 when never set."""
        kind = SPECS.get(name, ("counter",))[0]
        sample = name + "_count" if kind == "histogram" else name
        value = self.registry.get_sample_value(sample, {k: str(v) for k, v in labels.items()})
        return value or 0.0

    def collect(self):
        """So the per-app registries can include this one (prometheus_client's Collector protocol)."""
        return self.registry.collect()

    def describe(self):
        return self.registry.collect()

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


METRICS = Metrics()


class EngineCollector:
    """What one engine's state looks like at scrape time: read, never counted."""

    def __init__(self, engine):
        self.engine = engine

    def describe(self):
        return []  # the families depend on the engine's state; nothing to check at registration

    def collect(self):
        engine = self.engine
        store = engine.store
        status = store.file_status()
        for name, key, help_text in (
            ("adherence_database_bytes", "size_bytes", "Size of the database file."),
            ("adherence_database_wal_bytes", "wal_bytes", "Size of the database's write-ahead log (WAL)."),
            ("adherence_disk_free_bytes", "free_bytes", "Free space on the database's file system (for this user)."),
        ):
            fam = GaugeMetricFamily(name, help_text)
            if status.get(key) is not None:
                fam.add_metric([], status[key])
            yield fam
        ready = GaugeMetricFamily("adherence_database_writable", "1 when the database takes writes, else 0.")
        ready.add_metric([], 0 if store.check() else 1)
        yield ready
        opened = GaugeMetricFamily("adherence_open_exceptions", "Exceptions open now, by severity.", labels=["severity"])
        age = GaugeMetricFamily("adherence_feed_last_record_age_seconds",
                                "Seconds since the newest journaled record was received (feed silence).")
        try:
            reader = store.reader
            for severity, count in reader.execute(
                    "SELECT severity, COUNT(*) FROM exceptions WHERE end_ms IS NULL GROUP BY severity"):
                opened.add_metric([str(severity)], count)
            row = reader.execute("SELECT received_ms FROM journal ORDER BY id DESC LIMIT 1").fetchone()
            if row is not None:
                age.add_metric([], max(0.0, (engine.clock.now_ms() - row[0]) / 1000))
        except Exception:  # the database is down: /health says why; the other figures still count
            pass
        yield opened
        yield age
        notifier = getattr(engine, "notifier", None)
        if notifier is not None:
            outbox = GaugeMetricFamily("adherence_notifications_outbox",
                                       "Notification outbox entries by channel and status (dead: dead-lettered).",
                                       labels=["channel", "status"])
            try:
                for (channel, status), n in notifier.counts().items():
                    outbox.add_metric([channel, status], n)
            except Exception:
                pass
            yield outbox


def registry_for(engine) -> CollectorRegistry:
    """A fresh registry for one app: the process's events, this engine's state, the process itself."""
    registry = CollectorRegistry()
    registry.register(METRICS)
    registry.register(EngineCollector(engine))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(app) -> tuple[bytes, str]:
    """The body and content type of ``/metrics`` for ``app`` (text format 0.0.4)."""
    engine = app.extensions["adherence"]
    registry = app.extensions.get("adherence_metrics")
    if registry is None:
        registry = app.extensions.setdefault("adherence_metrics", registry_for(engine))
    METRICS.set("adherence_live_agents", len(engine.tracker.workers()))
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
