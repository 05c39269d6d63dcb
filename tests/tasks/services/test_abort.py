"""Aborting a running job: the worker interrupts it, the record ends cancelled saying who aborted
it, it is neither retried nor dead-lettered, and the worker goes on with other jobs."""

from __future__ import annotations

import io
import uuid

import dramatiq
import pytest
from django.core.management import CommandError, call_command

from apps.tasks import keys
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services import control
from tests.helpers import stream_events, wait_for
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
WORKER = ("--processes", "1", "--threads", "2", "--queues", "default")


def marker() -> str:
    return f"{dramatiq.get_broker().namespace}:test:abort:{uuid.uuid4().hex}"


def status_of(job_id: str) -> str | None:
    return JobRecord.objects.filter(message_id=job_id).values_list("status", flat=True).first()


def started(broker_redis, key: str, job_id: str) -> None:
    wait_for(lambda: broker_redis.get(key) == b"started", timeout=30, message="the job to start")
    wait_for(lambda: status_of(job_id) == JobStatus.RUNNING, timeout=10, message="its running record")


def test_an_aborted_job_stops_in_its_worker_and_is_not_retried(start_worker, broker_redis, clean_queues):
    key = marker()
    start_worker(*WORKER)
    job_id = enqueue(tasks.work_until_aborted, args=(key, 60.0))
    started(broker_redis, key, job_id)

    control.abort_job(job_id, by="ops (test)", reason="runaway import")
    wait_for(lambda: status_of(job_id) == JobStatus.CANCELLED, timeout=15, message="the job to be aborted")
    record = JobRecord.objects.get(message_id=job_id)
    assert record.error_message == "aborted by ops (test): runaway import"
    assert record.error_type == "dramatiq_abort.abort_manager.Abort" and record.attempts == 1
    assert broker_redis.get(key) == b"started"  # interrupted before it could finish
    assert stream_events(broker_redis, job_id, until="aborted")[-1]["event"] == "aborted"

    # The worker goes on; the aborted job is neither retried (max_retries=3) nor a dead letter.
    after = enqueue(tasks.add, args=(1, 2))
    wait_for(lambda: status_of(after) == JobStatus.COMPLETED, timeout=30, message="the next job")
    namespace = dramatiq.get_broker().namespace
    assert broker_redis.zcard(keys.dead_letters(namespace, "default")) == 0
    assert status_of(job_id) == JobStatus.CANCELLED


def test_a_job_given_grace_stops_itself_at_its_check_point(start_worker, broker_redis, clean_queues):
    key = marker()
    start_worker(*WORKER)
    job_id = enqueue(tasks.stop_at_check_point, args=(key, 60.0))
    started(broker_redis, key, job_id)

    control.abort_job(job_id, by="ops (test)", grace_seconds=30)
    wait_for(lambda: status_of(job_id) == JobStatus.COMPLETED, timeout=15, message="the job to stop itself")
    assert broker_redis.get(key) == b"cleaned up"


def test_the_command_aborts_running_jobs_and_names_the_ones_it_cannot(start_worker, broker_redis, clean_queues):
    key = marker()
    start_worker(*WORKER)
    running = enqueue(tasks.work_until_aborted, args=(key, 60.0))
    started(broker_redis, key, running)
    waiting = enqueue(tasks.add, args=(1, 2), delay=60_000)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 job"):
        call_command("tasks", "abort", running, waiting, "--reason", "night run", stdout=out, stderr=err)
    assert f"Abort of {running} requested." in out.getvalue()
    assert "Not aborted:" in err.getvalue() and "cancel it instead" in err.getvalue()
    wait_for(lambda: status_of(running) == JobStatus.CANCELLED, timeout=15, message="the job to be aborted")
    assert JobRecord.objects.get(message_id=running).error_message.endswith("(manage.py tasks abort): night run")


def test_only_running_jobs_can_be_aborted(broker_redis, clean_queues):
    job_id = enqueue(tasks.add, args=(1, 2), delay=60_000)
    with pytest.raises(control.CannotCancel, match="is pending; only running jobs can be aborted; cancel it instead"):
        control.abort_job(job_id, by="ops")
    with pytest.raises(JobRecord.DoesNotExist):
        control.abort_job("no-such-job", by="ops")


def test_the_api_and_the_admin_detail_page_abort_a_running_job(
    start_worker, broker_redis, clean_queues, admin_client, client, settings
):
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"api_token": "script-token"})
    bearer = {"HTTP_AUTHORIZATION": "Bearer script-token"}
    start_worker(*WORKER)
    by_api, by_admin = marker(), marker()
    api_job = enqueue(tasks.work_until_aborted, args=(by_api, 60.0))
    admin_job = enqueue(tasks.work_until_aborted, args=(by_admin, 60.0))
    started(broker_redis, by_api, api_job)
    started(broker_redis, by_admin, admin_job)

    assert client.post(f"/tasks/api/jobs/{api_job}/abort/", {"grace": "soon"}, **bearer).status_code == 400
    response = client.post(f"/tasks/api/jobs/{api_job}/abort/", {"reason": "stuck"}, **bearer)
    assert response.status_code == 202 and response.json()["abort_requested"] is True

    detail_url = f"/admin/dramatiq_tasks/jobrecord/{admin_job}/change/"
    detail = admin_client.get(detail_url).content.decode()
    assert 'id="abort-job"' in detail and 'id="cancel-job"' not in detail
    admin_client.post(f"/admin/dramatiq_tasks/jobrecord/{admin_job}/abort/")

    for job_id, text in ((api_job, "aborted by api token (api): stuck"), (admin_job, "aborted by admin (admin)")):
        wait_for(lambda job_id=job_id: status_of(job_id) == JobStatus.CANCELLED, timeout=15, message=f"{job_id}")
        assert JobRecord.objects.get(message_id=job_id).error_message == text
    refused = client.post(f"/tasks/api/jobs/{api_job}/abort/", **bearer)
    assert refused.status_code == 409 and "only running jobs" in refused.json()["error"]
