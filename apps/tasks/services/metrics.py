"""Job counters and duration histograms kept in Redis, so every worker process on every host adds
to the same series and any process can serve them (see apps.tasks.metrics).

One hash per namespace. Its fields are JSON arrays, so queue and actor names need no escaping:
``["c", outcome, queue, actor]`` a counter, ``["b", queue, actor, i]`` durations that fell in
bucket ``i`` (not cumulative), ``["s", queue, actor]`` the sum of durations in seconds. Worker
processes add their deltas in one pipeline per flush (middleware.metrics); values only grow, as
Prometheus counters must.
"""

from __future__ import annotations

import json
import math
import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

import dramatiq
import redis

from apps.tasks import keys
from apps.tasks.broker import get_redis

COMPLETED = "completed"
FAILED = "failed"
DEAD_LETTERED = "dead_lettered"
OUTCOMES = (COMPLETED, FAILED, DEAD_LETTERED)

#: Upper bounds (seconds) of the duration histogram's buckets; the last is +Inf.
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, math.inf,
)  # fmt: skip


def bucket_index(seconds: float) -> int:
    """The first bucket whose upper bound is at least ``seconds``."""
    return bisect_left(BUCKETS, seconds)


@dataclass
class JobMetrics:
    """Counts by (outcome, queue, actor); histogram counts by (queue, actor, bucket); sums by (queue, actor)."""

    counts: Counter = field(default_factory=Counter)
    buckets: Counter = field(default_factory=Counter)
    sums: Counter = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.counts or self.buckets or self.sums)

    def add(self, other: JobMetrics) -> None:
        self.counts.update(other.counts)
        self.buckets.update(other.buckets)
        self.sums.update(other.sums)


class MetricsBuffer:
    """What one worker process counted since its last flush (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = JobMetrics()

    def finished(self, queue: str, actor: str, seconds: float, failed: bool) -> None:
        with self._lock:
            self._pending.counts[(FAILED if failed else COMPLETED, queue, actor)] += 1
            self._pending.buckets[(queue, actor, bucket_index(seconds))] += 1
            self._pending.sums[(queue, actor)] += seconds

    def dead_lettered(self, queue: str, actor: str) -> None:
        with self._lock:
            self._pending.counts[(DEAD_LETTERED, queue, actor)] += 1

    def drain(self) -> JobMetrics:
        with self._lock:
            drained, self._pending = self._pending, JobMetrics()
        return drained

    def restore(self, metrics: JobMetrics) -> None:
        """Give back deltas whose write failed, to be sent with the next flush."""
        with self._lock:
            self._pending.add(metrics)


def write(client: redis.Redis, namespace: str, metrics: JobMetrics) -> None:
    """Add ``metrics`` to the namespace's totals in one round-trip."""
    if not metrics:
        return
    key = keys.metrics(namespace)
    pipeline = client.pipeline(transaction=False)
    for (outcome, queue, actor), count in metrics.counts.items():
        pipeline.hincrby(key, json.dumps(["c", outcome, queue, actor]), count)
    for (queue, actor, index), count in metrics.buckets.items():
        pipeline.hincrby(key, json.dumps(["b", queue, actor, index]), count)
    for (queue, actor), seconds in metrics.sums.items():
        pipeline.hincrbyfloat(key, json.dumps(["s", queue, actor]), seconds)
    pipeline.execute()


def read(client: redis.Redis, namespace: str) -> JobMetrics:
    """The namespace's totals, in one round-trip."""
    totals = JobMetrics()
    for raw_field, raw_value in client.hgetall(keys.metrics(namespace)).items():
        try:
            kind, *labels = json.loads(raw_field)
            if kind == "c":
                totals.counts[tuple(labels)] += int(raw_value)
            elif kind == "b":
                totals.buckets[tuple(labels)] += int(raw_value)
            elif kind == "s":
                totals.sums[tuple(labels)] += float(raw_value)
        except (ValueError, TypeError):  # a field we did not write: ignore rather than fail a scrape
            continue
    return totals


def read_totals() -> JobMetrics:
    """The running broker's totals (what a scrape serves)."""
    return read(get_redis(), dramatiq.get_broker().namespace)
