"""Cancelling jobs: a ready or delayed job never runs, a running or finished one is refused; the
record says who did it, from the admin, the API and the command line."""

from __future__ import annotations

import io
import uuid

import dramatiq
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command

from apps.tasks import keys
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services import control
from apps.tasks.services.queues import queue_stats
from tests.helpers import stream_events, wait_for
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)
WORKER = ("--processes", "1", "--threads", "2", "--queues", "default")


def effect_key() -> str:
    return f"{dramatiq.get_broker().namespace}:test:cancel:{uuid.uuid4().hex}"


def completed(job_id: str) -> bool:
    return JobRecord.objects.filter(message_id=job_id, status=JobStatus.COMPLETED).exists()


@pytest.mark.worker
def test_a_cancelled_ready_job_never_runs_and_says_who_cancelled_it(start_worker, broker_redis, clean_queues):
    key = effect_key()
    doomed = enqueue(tasks.record_effect, args=(key, "must not run"))
    assert control.cancel_job(doomed, by="ops (test)", reason="sent by mistake") == "removed"
    assert queue_stats(("default",))[0].ready == 0

    start_worker(*WORKER)
    after = enqueue(tasks.record_effect, args=(key, "ran"))
    wait_for(lambda: completed(after), timeout=30, message="the job sent after it")
    assert broker_redis.lrange(key, 0, -1) == [b"ran"]
    record = JobRecord.objects.get(message_id=doomed)
    assert record.status == JobStatus.CANCELLED and record.finished_at is not None
    assert record.error_message == "cancelled by ops (test): sent by mistake"
    event = stream_events(broker_redis, doomed)[-1]
    assert event["event"] == "cancelled" and event["meta"]["by"] == "ops (test)"
    with pytest.raises(control.CannotCancel, match="is cancelled; only pending or delayed"):
        control.cancel_job(doomed, by="ops")


@pytest.mark.worker
def test_a_delayed_job_held_by_a_worker_is_dropped_when_due(start_worker, broker_redis, clean_queues):
    key = effect_key()
    start_worker(*WORKER)
    delayed = enqueue(tasks.record_effect, args=(key, "must not run"), delay=2000)
    namespace = dramatiq.get_broker().namespace
    # The worker fetches the delay queue at once and holds the message until it is due.
    wait_for(lambda: broker_redis.llen(keys.delay_queue(namespace, "default")) == 0, timeout=20,
             message="the worker to hold the delayed message")  # fmt: skip
    assert control.cancel_job(delayed, by="ops") == "noted"
    wait_for(lambda: not broker_redis.sismember(keys.cancelled(namespace), f"{delayed}.1"), timeout=30,
             message="the message to come due and be dropped")  # fmt: skip
    after = enqueue(tasks.record_effect, args=(key, "ran"))
    wait_for(lambda: completed(after), timeout=30, message="the job sent after it")
    assert broker_redis.lrange(key, 0, -1) == [b"ran"]
    assert JobRecord.objects.get(message_id=delayed).status == JobStatus.CANCELLED


def test_running_and_finished_jobs_are_refused(broker_redis, clean_queues):
    running = enqueue(tasks.add, args=(1, 1))
    JobRecord.objects.filter(message_id=running).update(status=JobStatus.RUNNING)
    with pytest.raises(control.CannotCancel, match="is running"):
        control.cancel_job(running, by="ops")
    # Fetched by a worker but its record still pending: a worker holds it, it may be running.
    namespace = dramatiq.get_broker().namespace
    held = enqueue(tasks.add, args=(2, 2))
    broker_redis.lrem(keys.queue(namespace, "default"), 0, f"{held}.1")
    with pytest.raises(control.CannotCancel, match="already taken by a worker"):
        control.cancel_job(held, by="ops")
    assert JobRecord.objects.get(message_id=held).status == JobStatus.PENDING


def test_cancel_from_the_api_the_admin_and_the_command_line(client, admin_client, broker_redis, clean_queues):
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrecord", "change_jobrecord"]))
    client.force_login(user)
    by_api, by_admin, by_cli = (enqueue(tasks.add, args=(n, n)) for n in range(3))

    response = client.post(f"/tasks/api/jobs/{by_api}/cancel/", {"reason": "duplicate"})
    assert response.status_code == 200 and response.json()["cancelled"] is True
    assert client.post(f"/tasks/api/jobs/{by_api}/cancel/").status_code == 409
    assert client.post("/tasks/api/jobs/nope/cancel/").status_code == 404

    admin_client.post("/admin/dramatiq_tasks/jobrecord/", {"action": "cancel_selected", "_selected_action": [by_admin]})

    out = io.StringIO()
    call_command("tasks", "cancel", by_cli, "--reason", "tidy up", stdout=out)
    assert f"Cancelled {by_cli}." in out.getvalue()
    with pytest.raises(CommandError, match="1 of 1 job"):
        call_command("tasks", "cancel", by_cli, stdout=io.StringIO(), stderr=io.StringIO())

    rows = JobRecord.objects.filter(message_id__in=[by_api, by_admin, by_cli])
    texts = dict(rows.values_list("message_id", "error_message"))
    assert texts[by_api] == "cancelled by ops (api): duplicate"
    assert texts[by_admin] == "cancelled by admin (admin)"
    assert texts[by_cli].startswith("cancelled by ") and texts[by_cli].endswith("(manage.py tasks cancel): tidy up")


@pytest.mark.worker
def test_a_paused_queue_is_not_fetched_by_any_worker_until_resumed(start_worker, broker_redis, clean_queues):
    from apps.tasks.health import get_task_health

    start_worker("--processes", "2", "--threads", "2", "--queues", "default", "high")
    running = enqueue(tasks.take_a_moment, args=(1.5,))
    wait_for(lambda: JobRecord.objects.filter(message_id=running, status=JobStatus.RUNNING).exists(), timeout=30,
             message="a job running when the queue is paused")  # fmt: skip
    control.pause_queue("default", by="ops (test)")
    waiting = [enqueue(tasks.add, args=(n, n)) for n in range(3)]  # enqueue goes on
    # While paused: the running job finishes, and the same workers still serve another queue.
    wait_for(lambda: completed(running), timeout=30, message="the job that was running")
    other = enqueue(tasks.add, args=(9, 9), queue_name="high")
    wait_for(lambda: completed(other), timeout=30, message="a job on a queue that is not paused")
    assert JobRecord.objects.filter(message_id__in=waiting, status=JobStatus.PENDING).count() == 3
    stats = {stat.name: stat for stat in queue_stats(("default", "high"))}
    assert stats["default"].paused and stats["default"].ready == 3 and not stats["high"].paused
    assert get_task_health()["paused_queues"] == ["default"]
    assert control.paused_queues()["default"]["by"] == "ops (test)"

    assert control.resume_queue("default", by="ops (test)") is True
    wait_for(lambda: all(completed(job_id) for job_id in waiting), timeout=30, message="the jobs after resume")
    assert control.paused_queues() == {} and control.resume_queue("default", by="ops") is False


def test_pause_and_resume_from_the_api_the_admin_and_the_command_line(client, admin_client, broker_redis):
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrecord", "change_jobrecord"]))
    client.force_login(user)
    try:
        assert client.post("/tasks/api/queues/low/pause/").json() == {"queue": "low", "paused": True}
        assert control.paused_queues()["low"]["by"] == "ops (api)"
        assert client.post("/tasks/api/queues/nope/pause/").status_code == 404
        assert client.post("/tasks/api/queues/low/resume/").json()["was_paused"] is True

        admin_client.post("/admin/dramatiq_tasks/jobrecord/dashboard/pause/low/")
        banner = admin_client.get("/admin/dramatiq_tasks/jobrecord/dashboard/data/").json()["banner"]
        assert any(line["text"].startswith("Paused: low ") for line in banner)
        assert control.paused_queues()["low"]["by"] == "admin (admin)"
        admin_client.post("/admin/dramatiq_tasks/jobrecord/dashboard/resume/low/")
        assert control.paused_queues() == {}

        out = io.StringIO()
        call_command("tasks", "pause", "low", stdout=out)
        assert "Paused 'low'" in out.getvalue()
        call_command("tasks", "queues", stdout=out)
        assert any(line.startswith("low") and line.rstrip().endswith("yes") for line in out.getvalue().splitlines())
        call_command("tasks", "resume", "low", stdout=out)
        assert "Resumed 'low'." in out.getvalue()
    finally:
        control.resume_queue("low", by="test cleanup")
