"""The Prometheus endpoint: queue depths, dead letters and live workers read from Redis at scrape
time, and job counters and duration histograms that every worker process adds to in Redis.

Everything is computed when Prometheus scrapes, from Redis, so the numbers are the same whichever
web process (or host) answers and however many worker processes there are: no
``PROMETHEUS_MULTIPROC_DIR`` to share between processes, nothing lost when a web process restarts.
Off by default (``TASK_CONFIG.metrics_enabled``, env ``TASKS_METRICS``); the endpoint answers 404
while off. ``metrics_token`` (env ``TASKS_METRICS_TOKEN``) makes it want a bearer token.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder

from apps.tasks.access import bearer_token_matches
from apps.tasks.config import get_task_config
from apps.tasks.masking import mask_text
from apps.tasks.services import metrics
from apps.tasks.services.metrics import BUCKETS
from apps.tasks.services.queues import queue_stats
from apps.tasks.services.workers import live_workers

logger = logging.getLogger(__name__)


class TaskCollector:
    """A prometheus_client collector whose every sample comes from Redis when ``collect`` runs."""

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("tasks_redis_up", "1 when the broker's Redis answered this scrape, else 0.")
        try:
            stats = queue_stats()
            workers = live_workers()
            totals = metrics.read_totals()
        except Exception as exc:
            logger.warning("Metrics scrape: Redis failed: %s", mask_text(str(exc)))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        depth = GaugeMetricFamily(
            "tasks_queue_messages", "Messages in a queue: ready, in_flight or delayed.", labels=["queue", "state"]
        )
        dead = GaugeMetricFamily("tasks_queue_dead_letters", "Messages in a queue's dead letters.", labels=["queue"])
        age = GaugeMetricFamily(
            "tasks_queue_oldest_message_age_seconds", "Age of the oldest ready message.", labels=["queue"]
        )
        consumers = GaugeMetricFamily("tasks_queue_consumers", "Live worker processes on a queue.", labels=["queue"])
        for stat in stats:
            depth.add_metric([stat.name, "ready"], stat.ready)
            depth.add_metric([stat.name, "in_flight"], stat.in_flight)
            depth.add_metric([stat.name, "delayed"], stat.delayed)
            dead.add_metric([stat.name], stat.dead_letter)
            if stat.oldest_age_seconds is not None:
                age.add_metric([stat.name], stat.oldest_age_seconds)
            consumers.add_metric([stat.name], sum(1 for worker in workers if stat.name in worker.queues))
        yield from (depth, dead, age, consumers)

        live = GaugeMetricFamily("tasks_workers_live", "Worker processes with a fresh heartbeat in the registry.")
        live.add_metric([], len(workers))
        threads = GaugeMetricFamily("tasks_worker_threads_live", "Worker threads of the live worker processes.")
        threads.add_metric([], sum(worker.threads for worker in workers))
        yield from (live, threads)

        descriptions = {
            metrics.COMPLETED: "Attempts that returned, summed over every worker process.",
            metrics.FAILED: "Attempts that raised (retried or not), summed over every worker process.",
            metrics.DEAD_LETTERED: "Messages moved to the dead letter queue by a worker.",
        }
        for outcome in metrics.OUTCOMES:
            family = CounterMetricFamily(f"tasks_{outcome}", descriptions[outcome], labels=["queue", "actor"])
            for (counted, queue, actor), value in sorted(totals.counts.items()):
                if counted == outcome:
                    family.add_metric([queue, actor], value)
            yield family
        yield self._durations(totals)

    @staticmethod
    def _durations(totals: Any) -> Any:
        family = HistogramMetricFamily(
            "tasks_duration_seconds", "Time attempts took, over every worker process.", labels=["queue", "actor"]
        )
        series = sorted({(queue, actor) for queue, actor, _ in totals.buckets})
        for queue, actor in series:
            cumulative, buckets = 0, []
            for index, bound in enumerate(BUCKETS):
                cumulative += totals.buckets.get((queue, actor, index), 0)
                buckets.append(("+Inf" if math.isinf(bound) else repr(bound), cumulative))
            family.add_metric([queue, actor], buckets, sum_value=totals.sums.get((queue, actor), 0.0))
        return family


def render_metrics(accept: str = "") -> tuple[bytes, str]:
    """The exposition in the format the ``Accept`` header asks for (OpenMetrics or Prometheus text
    0.0.4 by default), and its content type; a fresh registry holding only TaskCollector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskCollector())
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


def _authorized(request: HttpRequest, token: str) -> bool:
    return not token or bearer_token_matches(request, token)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """For Prometheus: 404 while metrics are off, 401 without the configured bearer token."""
    config = get_task_config()
    if not config.metrics_enabled:
        raise Http404("metrics are off (TASKS_METRICS)")
    if not _authorized(request, config.metrics_token):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render_metrics(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
