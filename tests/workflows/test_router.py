"""JobRouter: short jobs on Dramatiq, long / multi-step / compensating jobs on Temporal, one id space
that the job records, status API and admin understand for both."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from apps.tasks.models import JobBackend, JobRecord, JobStatus
from apps.tasks.services import records
from apps.workflows.router import LONG_JOB_SECONDS, Job, JobRouter, RoutingError
from tests.helpers import stream_events, wait_for
from tests.testapp import tasks

from .helpers import wait_for_record, workflow_status

db = pytest.mark.django_db(transaction=True)


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "backend"),
    [
        (Job("add", args=(1, 2)), JobBackend.DRAMATIQ),
        (Job("add", expected_duration=LONG_JOB_SECONDS), JobBackend.DRAMATIQ),  # "over 30 s" means over
        (Job("add", expected_duration=LONG_JOB_SECONDS + 1), JobBackend.TEMPORAL),
        (Job("add", expected_duration=timedelta(minutes=5)), JobBackend.TEMPORAL),
        (Job("add", steps=2), JobBackend.TEMPORAL),
        (Job("add", needs_compensation=True), JobBackend.TEMPORAL),
        (Job("ReindexKnowledgeWorkflow"), JobBackend.TEMPORAL),  # a workflow runs nowhere else
    ],
)
def test_route_follows_the_declared_characteristics(temporal, job, backend):
    assert JobRouter().route(job) is backend


def test_reasons_name_every_characteristic(temporal):
    job = Job("add", expected_duration=90, steps=3, needs_compensation=True)
    assert JobRouter().reasons(job) == ["expected to run 90s (over 30s)", "3 steps", "needs compensation"]
    assert JobRouter(long_job_seconds=120).reasons(Job("add", expected_duration=90)) == []


@db
def test_with_temporal_disabled_short_jobs_still_go_to_dramatiq_and_long_ones_are_refused(
    broker_redis, clean_queues, settings
):
    settings.TEMPORAL_CONFIG = settings.TEMPORAL_CONFIG.model_copy(update={"enabled": False})
    router = JobRouter()
    job_id = router.enqueue(Job("add", args=(1, 2)))
    assert JobRecord.objects.get(pk=job_id).backend == JobBackend.DRAMATIQ
    with pytest.raises(RoutingError, match="Temporal is disabled"):
        router.enqueue(Job("add", args=(1, 2), steps=2))
    assert JobRecord.objects.count() == 1


@db
def test_unknown_names_and_workflow_kwargs_are_refused(temporal, broker_redis):
    router = JobRouter()
    with pytest.raises(RoutingError, match="no dramatiq actor"):
        router.enqueue(Job("no_such_job"))
    with pytest.raises(RoutingError, match="no workflow or dramatiq actor"):
        router.enqueue(Job("no_such_job", steps=2))
    with pytest.raises(RoutingError, match="positional args only"):
        router.enqueue(Job("ReindexKnowledgeWorkflow", kwargs={"batch_size": 1}))
    assert not JobRecord.objects.exists()


@db
def test_a_temporal_start_failure_leaves_the_record_pending_with_the_reason(temporal, broker_redis):
    from apps.tasks.enqueue import EnqueueError
    from apps.workflows.devserver import free_port

    unreachable = temporal.model_copy(update={"address": f"127.0.0.1:{free_port()}", "connect_timeout": 1.0})
    with override_settings(TEMPORAL_CONFIG=unreachable):
        with pytest.raises(EnqueueError, match="workflow start failed"):
            JobRouter().enqueue(Job("add", args=(1, 2), steps=2))
    record = JobRecord.objects.get()
    assert (record.status, record.backend) == (JobStatus.PENDING, JobBackend.TEMPORAL)
    assert record.error_message.startswith("workflow start failed")


# --- both backends, for real ----------------------------------------------------------------


@db
@pytest.mark.worker
def test_a_short_job_runs_on_dramatiq_and_a_long_one_on_temporal(
    temporal, start_worker, start_temporal_worker, clean_queues, broker_redis, client
):
    start_worker("--processes", "1", "--threads", "1", "--queues", "default")
    temporal_worker = start_temporal_worker()
    router = JobRouter()

    short_id = router.enqueue(Job("add", args=(2, 3)))
    long_id = router.enqueue(Job("add", args=(4, 5), expected_duration=timedelta(minutes=2)))

    short = wait_for_record(short_id, JobStatus.COMPLETED, timeout=60)
    assert (short.backend, short.queue_name, short.result) == (JobBackend.DRAMATIQ, "default", 5)
    long = wait_for_record(long_id, JobStatus.COMPLETED, timeout=60)
    assert (long.backend, long.actor_name, long.queue_name, long.result) == (
        JobBackend.TEMPORAL, "add", temporal.task_queue, 9,
    )  # fmt: skip
    assert long.args == [4, 5] and long.worker.endswith(f":{temporal_worker.pid}")
    assert long.started_at <= long.finished_at and long.duration_ms is not None
    wait_for(lambda: workflow_status(long_id) == "COMPLETED", timeout=30)  # the job id is the workflow id

    short_events = stream_events(broker_redis, short_id)
    assert {event["source"] for event in short_events} == {"dramatiq"}
    long_events = stream_events(broker_redis, long_id, until="completed")
    assert {event["source"] for event in long_events} == {"temporal"}
    assert [event["event"] for event in long_events] == [
        "enqueued", "started", "activity_started", "activity_completed", "completed",
    ]  # fmt: skip
    assert set(long_events[0]) == set(short_events[0])  # one schema for both
    assert long_events[0]["meta"]["workflow"] == "RunActorWorkflow"

    # The status API and the admin know both.
    staff = User.objects.create_superuser("admin", password="pw")
    client.force_login(staff)
    detail = client.get(f"/tasks/api/jobs/{long_id}/").json()
    assert (detail["backend"], detail["status"], detail["result"]) == ("temporal", "completed", 9)
    listed = client.get("/tasks/api/jobs/", {"backend": "temporal"}).json()["results"]
    assert [row["id"] for row in listed] == [long_id]
    by_queue = client.get("/tasks/api/jobs/", {"queue": temporal.task_queue}).json()["results"]
    assert [row["id"] for row in by_queue] == [long_id]
    assert client.get("/tasks/api/jobs/", {"backend": "celery"}).status_code == 400
    page = client.get("/admin/dramatiq_tasks/jobrecord/", {"backend": "temporal"}).content.decode()
    assert long_id in page and short_id not in page
    retry = client.post(f"/tasks/api/jobs/{long_id}/retry/")
    assert retry.status_code == 409 and "JobRouter" in retry.json()["error"]


@db
@pytest.mark.worker
def test_a_permanent_error_fails_the_temporal_job_without_retries(temporal, start_temporal_worker, broker_redis):
    start_temporal_worker()
    job_id = JobRouter().enqueue(Job(tasks.broken.actor_name, args=("bad input",), steps=2))
    record = wait_for_record(job_id, JobStatus.FAILED, timeout=60)
    # The dotted path, as in dramatiq's records (the activity's ApplicationError names only the class).
    assert (record.backend, record.error_type) == (JobBackend.TEMPORAL, "apps.tasks.errors.PermanentError")
    assert "bad input" in record.error_message
    names = [event["event"] for event in stream_events(broker_redis, job_id, until="failed")]
    assert names == ["enqueued", "started", "activity_started", "activity_failed", "failed"]
    with pytest.raises(records.CannotRetry):
        records.retry_job(job_id)


@db
@pytest.mark.worker
def test_an_ordinary_exception_is_recorded_with_its_dotted_path(temporal, start_temporal_worker):
    start_temporal_worker()
    job = Job(tasks.leaks_secrets.actor_name, args=("redis://db:6379", "pw", "tok", "t"), steps=2)
    record = wait_for_record(JobRouter().enqueue(job), JobStatus.FAILED, timeout=60)
    assert record.error_type == "builtins.ConnectionError" and "Connection refused" in record.error_message


@db
def test_dramatiq_records_say_dramatiq(broker_redis, clean_queues):
    from apps.tasks.enqueue import enqueue

    assert JobRecord.objects.get(pk=enqueue(tasks.add, args=(1, 1))).backend == JobBackend.DRAMATIQ


@db
def test_inside_a_transaction_the_workflow_starts_when_it_commits(temporal):
    from django.db import transaction
    from temporalio.service import RPCError

    from apps.workflows import client

    with transaction.atomic():
        job_id = JobRouter().enqueue(Job("add", args=(1, 1), steps=2))
        assert JobRecord.objects.get(pk=job_id).status == JobStatus.PENDING
        with pytest.raises(RPCError, match="not found"):
            workflow_status(job_id)
    try:
        assert workflow_status(job_id) == "RUNNING"
    finally:
        client.run(lambda temporal_client: temporal_client.get_workflow_handle(job_id).terminate())
