"""The "Queues & workers" page counts Temporal jobs (chart, failed count, failure rate) and lists Temporal
workers, with a real dev server and a ``runtemporal`` worker."""

from __future__ import annotations

import re
import socket

import pytest
from django.contrib.auth.models import User

from apps.tasks.health import get_task_health
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services.dashboard import dashboard_data
from apps.workflows.records import reconcile
from apps.workflows.router import Job, JobRouter
from tests.helpers import wait_for
from tests.testapp import tasks

from .helpers import wait_for_record

DATA = "/admin/dramatiq_tasks/jobrecord/dashboard/data/"


def minute_counts(data: dict, record: JobRecord) -> dict[str, int]:
    """The chart's counts for the minute ``record`` finished in."""
    minute = int(record.finished_at.timestamp() // 60) * 60
    (point,) = [point for point in data["series"] if point["minute"] == minute]
    return {"completed": point["completed"], "failed": point["failed"]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_temporal_jobs_and_workers_are_on_the_dashboard(
    temporal, start_temporal_worker, broker_redis, clean_queues, client
):
    worker = start_temporal_worker()
    router = JobRouter()
    done = wait_for_record(router.enqueue(Job("add", args=(1, 2), steps=2)), JobStatus.COMPLETED, timeout=60)
    failed = wait_for_record(
        router.enqueue(Job(tasks.broken.actor_name, args=("bad input",), steps=2)), JobStatus.FAILED, timeout=60
    )

    # The worker process counts right after it writes the final record: poll, bounded.
    def counted() -> dict | None:
        data = dashboard_data(get_task_health())
        return data if data["completed_last_hour"] + data["failed_last_hour"] >= 2 else None

    data = wait_for(counted, timeout=15, interval=0.1, message="the Temporal jobs in the per-minute counters")
    together = done.finished_at.timestamp() // 60 == failed.finished_at.timestamp() // 60
    if together:
        assert minute_counts(data, done) == {"completed": 1, "failed": 1}
    else:
        assert minute_counts(data, done)["completed"] == 1 and minute_counts(data, failed)["failed"] == 1
    assert (data["completed_last_hour"], data["failed_last_hour"], data["failure_rate"]) == (1, 1, 0.5)

    # A final record written again (reconcile, a retried record activity) is not counted again.
    assert not reconcile(done.pk, "COMPLETED", done.finished_at, "RunActorWorkflow", temporal.task_queue)
    assert not reconcile(failed.pk, "TERMINATED", failed.finished_at, "RunActorWorkflow", temporal.task_queue)
    again = dashboard_data(get_task_health())
    assert (again["completed_last_hour"], again["failed_last_hour"]) == (1, 1)

    # The failed count links to exactly the records it counts: the Temporal failure included.
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    listed = client.get(client.get(DATA).json()["failed_url"]).content.decode()
    assert set(re.findall(r'name="_selected_action" value="([^"]+)"', listed)) == {failed.pk}

    # The workers panel lists the Temporal worker, by kind.
    identity = f"{socket.gethostname()}:{worker.pid}"
    rows = [row for row in data["workers"] if row["kind"] == "temporal"]
    assert [(row["host"], row["pid"], row["queues"]) for row in rows] == [
        (socket.gethostname(), worker.pid, [temporal.task_queue])
    ], identity
    assert sorted(rows[0]["polls"]) == ["activity", "workflow"] and rows[0]["last_seen_seconds_ago"] >= 0
