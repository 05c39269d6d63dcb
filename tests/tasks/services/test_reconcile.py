"""Records whose message Redis lost are sent again from the record, or closed with the reason.

The first tests take the message away by hand and run one reconcile pass here; the last kills a
real Redis server mid-drain and starts it again empty, with a real worker draining 500 jobs.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from datetime import timedelta

import dramatiq
import pytest
import redis
from django.db import connection
from django.utils import timezone

from apps.tasks import keys
from apps.tasks.broker import redis_message_id
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services import reconcile
from tests.helpers import free_port, manage_env, run_manage, stream_events, wait_for
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _lose(broker_redis, job_id: str, queue: str = "default") -> str:
    """Delete the job's message from Redis, as a restart without persistence does; its Redis id."""
    namespace = dramatiq.get_broker().namespace
    record = JobRecord.objects.get(message_id=job_id)
    redis_id = f"{job_id}.{record.attempts + 1}"
    assert broker_redis.hdel(keys.queue_messages(namespace, queue), redis_id) == 1
    broker_redis.lrem(keys.queue(namespace, queue), 0, redis_id)
    return redis_id


def _past_grace(*job_ids: str) -> None:
    JobRecord.objects.filter(message_id__in=job_ids).update(updated_at=timezone.now() - timedelta(hours=1))


def test_a_message_lost_from_redis_is_sent_again_from_its_record(broker_redis, clean_queues):
    kept = enqueue(tasks.add, args=(1, 2))
    lost = enqueue(tasks.add, args=(2, 3))
    redis_id = _lose(broker_redis, lost)
    _past_grace(kept, lost)

    report = reconcile.reconcile()

    assert report.resent == [lost]
    namespace = dramatiq.get_broker().namespace
    body = broker_redis.hget(keys.queue_messages(namespace, "default"), redis_id)
    message = dramatiq.Message.decode(body)
    assert (message.message_id, message.actor_name, list(message.args)) == (lost, "add", [2, 3])
    assert redis_message_id(message) == redis_id
    assert broker_redis.lrange(keys.queue(namespace, "default"), 0, -1).count(redis_id.encode()) == 1
    record = JobRecord.objects.get(message_id=lost)
    assert record.status == JobStatus.PENDING
    assert [event["event"] for event in stream_events(broker_redis, lost)][-1] == reconcile.RESENT_EVENT
    assert reconcile.lost_counts()["resent"] >= 1
    # The next pass finds it queued: nothing is sent twice.
    _past_grace(kept, lost)
    assert reconcile.reconcile().resent == []


def test_a_lost_message_with_masked_and_oversized_arguments_is_sent_again_exactly(broker_redis, clean_queues):
    """The record shows them masked and cut; its sealed exact copy re-sends them as they were."""
    big = "x" * 20_000
    lost = enqueue(tasks.record_effect, args=("key", big), kwargs={})
    secret = enqueue(tasks.leaks_secrets, args=("redis://h",), kwargs={"password": "pw-1", "api_token": "t-2",
                                                                       "tokenizer": "bert"})  # fmt: skip
    records = {record.message_id: record for record in JobRecord.objects.filter(message_id__in=[lost, secret])}
    assert not records[lost].args_complete and not records[secret].args_complete
    assert records[secret].kwargs["password"] == "***" and "pw-1" not in records[secret].payload
    redis_ids = {job_id: _lose(broker_redis, job_id) for job_id in (lost, secret)}
    _past_grace(lost, secret)

    report = reconcile.reconcile()

    assert sorted(report.resent) == sorted([lost, secret])
    namespace = dramatiq.get_broker().namespace
    sent = {
        job_id: dramatiq.Message.decode(broker_redis.hget(keys.queue_messages(namespace, "default"), redis_id))
        for job_id, redis_id in redis_ids.items()
    }
    assert list(sent[lost].args) == ["key", big]
    assert sent[secret].kwargs == {"password": "pw-1", "api_token": "t-2", "tokenizer": "bert"}


def test_a_lost_message_that_cannot_be_rebuilt_is_closed_with_the_reason(broker_redis, clean_queues):
    lost = enqueue(tasks.add, args=(1, 2))
    _lose(broker_redis, lost)
    JobRecord.objects.filter(message_id=lost).update(args_complete=False)
    _past_grace(lost)

    report = reconcile.reconcile()

    assert report.lost == [lost]
    record = JobRecord.objects.get(message_id=lost)
    assert record.status == JobStatus.DEAD_LETTER
    assert record.error_type == reconcile.LOST_ERROR_TYPE
    assert "masked or truncated" in record.error_message
    assert record.finished_at is not None


def test_a_message_dead_lettered_behind_the_records_back_closes_its_record(broker_redis, clean_queues):
    job = enqueue(tasks.add, args=(1, 2))
    namespace = dramatiq.get_broker().namespace
    redis_id = _lose(broker_redis, job)
    broker_redis.zadd(keys.dead_letters(namespace, "default"), {redis_id: time.time() * 1000})
    broker_redis.hset(keys.dead_letter_messages(namespace, "default"), redis_id, b"{}")
    _past_grace(job)

    assert reconcile.reconcile().dead_lettered == [job]
    assert JobRecord.objects.get(message_id=job).status == JobStatus.DEAD_LETTER


def test_records_within_the_grace_period_are_left_alone(broker_redis, clean_queues):
    job = enqueue(tasks.add, args=(1, 2))
    _lose(broker_redis, job)
    report = reconcile.reconcile()
    assert job not in report.resent + report.lost
    assert JobRecord.objects.get(message_id=job).status == JobStatus.PENDING


def test_a_pass_is_bounded_and_the_next_one_goes_on_from_where_it_stopped(broker_redis, clean_queues, settings):
    config = settings.TASK_CONFIG
    settings.TASK_CONFIG = config.model_copy(
        update={"dramatiq": config.dramatiq.model_copy(update={"reconcile_batch": 2})}
    )
    jobs = [enqueue(tasks.add, args=(number, 1)) for number in range(5)]
    for job in jobs:
        _lose(broker_redis, job)
    _past_grace(*jobs)
    first = reconcile.reconcile()
    assert first.checked == 2
    resent = list(first.resent)
    for _ in range(3):
        _past_grace(*jobs)
        resent += reconcile.reconcile().resent
    assert sorted(resent) == sorted(jobs)


# --- Redis restarted empty mid-drain ---------------------------------------------------------


def _start_redis(port: int, directory) -> subprocess.Popen:
    server = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    wait_for(lambda: _answers(client), timeout=10, message=f"redis-server on port {port}")
    return server


def _answers(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


JOBS = 500


@pytest.mark.worker
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (.ci/run installs it)")
def test_redis_restarted_empty_mid_drain_loses_no_job(start_worker, tmp_path):
    port = free_port()
    server = _start_redis(port, tmp_path)
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "TASKS_RECONCILE_GRACE_MS": "2000",
        "TASKS_WORKER_HEARTBEAT_INTERVAL_MS": "500",
        "TEST_WORKER_DATABASE_NAME": str(connection.settings_dict["NAME"]),
    }
    try:
        sent = run_manage(
            "shell", "-c",
            "from apps.tasks.enqueue import enqueue\nfrom tests.testapp import tasks\n"
            f"for n in range({JOBS}): enqueue(tasks.take_a_moment, args=(0.02,))",
            env=manage_env(**env), timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        ids = list(JobRecord.objects.filter(actor_name="take_a_moment").values_list("message_id", flat=True))
        assert len(ids) == JOBS

        def completed() -> int:
            return JobRecord.objects.filter(message_id__in=ids, status=JobStatus.COMPLETED).count()

        start_worker("--processes", "1", "--threads", "4", "--queues", "default", **env)
        wait_for(lambda: completed() >= 50, timeout=60, message="the worker to make progress")
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        done_at_restart = completed()
        assert done_at_restart < JOBS, "the drain finished before Redis went: make the jobs slower"
        server = _start_redis(port, tmp_path)  # empty: nothing was saved

        try:
            wait_for(lambda: completed() == JOBS, timeout=120, interval=0.2, message=f"all {JOBS} jobs completed")
        except AssertionError:
            left = JobRecord.objects.filter(message_id__in=ids).exclude(status=JobStatus.COMPLETED)
            raise AssertionError(
                f"not completed: {[(r.status, r.attempts, r.error_type, r.updated_at) for r in left[:10]]}"
            ) from None
        assert not JobRecord.objects.filter(message_id__in=ids).exclude(status=JobStatus.COMPLETED).exists()
        print(f"Redis restarted empty after {done_at_restart} of {JOBS} jobs: all {JOBS} completed")
    finally:
        server.kill()
        server.wait(timeout=10)
