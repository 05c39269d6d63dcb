"""The Prometheus endpoint: gauges read from Redis at scrape time, job counters and duration
histograms summed over every worker process through Redis. Off by default."""

from __future__ import annotations

import math

import dramatiq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.tasks import keys
from apps.tasks.config import METRICS_MIDDLEWARE, TaskConfig
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services import metrics, workers
from tests.helpers import wait_for
from tests.testapp import tasks


@pytest.fixture
def metrics_on(settings):
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"metrics_enabled": True})


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_are_off_by_default(client, settings):
    assert TaskConfig().metrics_enabled is False
    assert settings.TASK_CONFIG.metrics_enabled is False
    assert client.get("/metrics").status_code == 404
    assert METRICS_MIDDLEWARE not in settings.DRAMATIQ_BROKER["MIDDLEWARE"]
    assert METRICS_MIDDLEWARE in TaskConfig(metrics_enabled=True).to_django_settings()["DRAMATIQ_BROKER"]["MIDDLEWARE"]


def test_a_token_guards_the_endpoint(client, settings, broker_redis):
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(
        update={"metrics_enabled": True, "metrics_token": "s3cret-token"}
    )
    assert "s3cret-token" not in repr(settings.TASK_CONFIG)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert value(scrape(client, Authorization="Bearer s3cret-token"), "tasks_redis_up") == 1


def test_prometheus_gets_openmetrics_when_it_asks(client, metrics_on, broker_redis):
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = client.get("/metrics", headers={"Accept": accept})
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.content.decode().endswith("# EOF\n")


def test_histogram_buckets_and_counts_add_up(broker_redis):
    namespace = f"{dramatiq.get_broker().namespace}-unit"
    buffer = metrics.MetricsBuffer()
    for seconds in (0.001, 0.2, 0.2, 3.0, 5000.0):
        buffer.finished("default", "work", seconds, failed=False)
    buffer.finished("default", "work", 0.05, failed=True)
    buffer.dead_lettered("default", "work")
    try:
        metrics.write(broker_redis, namespace, buffer.drain())
        metrics.write(broker_redis, namespace, buffer.drain())  # nothing new: a no-op
        totals = metrics.read(broker_redis, namespace)
    finally:
        broker_redis.delete(keys.metrics(namespace))
    assert totals.counts == {
        ("completed", "default", "work"): 5, ("failed", "default", "work"): 1, ("dead_lettered", "default", "work"): 1,
    }  # fmt: skip
    assert sum(totals.buckets.values()) == 6
    assert totals.buckets[("default", "work", len(metrics.BUCKETS) - 1)] == 1  # 5000 s: only +Inf
    assert math.isclose(totals.sums[("default", "work")], 5003.451)


def test_queue_gauges_come_from_redis(client, metrics_on, broker_redis, clean_queues):
    for _ in range(3):
        tasks.low_noop.send()
    samples = scrape(client)
    assert value(samples, "tasks_redis_up") == 1
    assert value(samples, "tasks_queue_messages", queue="low", state="ready") == 3
    assert value(samples, "tasks_queue_messages", queue="default", state="ready") == 0
    assert value(samples, "tasks_queue_dead_letters", queue="low") == 0
    assert value(samples, "tasks_queue_oldest_message_age_seconds", queue="low") >= 0
    assert value(samples, "tasks_queue_oldest_message_age_seconds", queue="default") is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_counters_and_histograms_are_summed_over_two_worker_processes(
    client, metrics_on, start_worker, broker_redis, clean_queues
):
    namespace = dramatiq.get_broker().namespace
    broker_redis.delete(keys.metrics(namespace))
    args = ("--processes", "1", "--threads", "2", "--queues", "default")
    first, second = start_worker(*args, TASKS_METRICS="1"), start_worker(*args, TASKS_METRICS="1")
    wait_for(lambda: len(workers.live_workers()) == 2, timeout=60, message="two worker processes registered")

    ids = [enqueue(tasks.mark_slowly, args=(f"{namespace}:test:metrics", n, 0.05)) for n in range(30)]
    ids += [enqueue(tasks.add, args=(n, n)) for n in range(20)]
    ids += [enqueue(tasks.broken, args=("no",)) for _ in range(4)]  # permanent: straight to dead letters
    wait_for(
        lambda: JobRecord.objects.filter(message_id__in=ids, status__in=[JobStatus.COMPLETED, JobStatus.DEAD_LETTER])
        .count() == len(ids),
        timeout=90,
        message="every job finished",
    )  # fmt: skip

    def counted():
        samples = scrape(client)
        done = value(samples, "tasks_completed_total", queue="default", actor="mark_slowly")
        return (
            samples
            if done == 30 and value(samples, "tasks_dead_lettered_total", queue="default", actor="broken")
            else None
        )

    samples = wait_for(counted, timeout=15, interval=0.2, message="the workers' counts flushed to Redis")
    assert value(samples, "tasks_completed_total", queue="default", actor="add") == 20
    assert value(samples, "tasks_failed_total", queue="default", actor="broken") == 4
    assert value(samples, "tasks_dead_lettered_total", queue="default", actor="broken") == 4
    assert value(samples, "tasks_queue_dead_letters", queue="default") == 4
    assert value(samples, "tasks_workers_live") == 2
    assert value(samples, "tasks_worker_threads_live") == 4
    assert value(samples, "tasks_queue_consumers", queue="default") == 2
    slow = {"queue": "default", "actor": "mark_slowly"}
    assert value(samples, "tasks_duration_seconds_count", **slow) == 30
    assert value(samples, "tasks_duration_seconds_bucket", le="0.025", **slow) == 0
    assert value(samples, "tasks_duration_seconds_bucket", le="+Inf", **slow) == 30
    assert value(samples, "tasks_duration_seconds_sum", **slow) >= 30 * 0.05
    # The same as the job records say, and both processes contributed.
    assert JobRecord.objects.filter(message_id__in=ids, status=JobStatus.COMPLETED).count() == 50
    by_worker = set(JobRecord.objects.filter(message_id__in=ids).values_list("worker", flat=True))
    assert len(by_worker) == 2, f"one worker process did all the work: {by_worker}"
    assert {first.pid, second.pid} == {info.ppid for info in workers.live_workers()}
