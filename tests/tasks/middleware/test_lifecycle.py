"""Job records and lifecycle events, through a real worker subprocess on real Redis."""

from __future__ import annotations

import json
import uuid

import dramatiq
import pytest
from django.db import transaction

from apps.tasks import keys
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import stream_events, wait_for
from tests.testapp import tasks
from tests.testapp.notifiers import notifications_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

NOTIFIER = "tests.testapp.notifiers.record_notification"


def record(message_id: str) -> JobRecord:
    return JobRecord.objects.get(message_id=message_id)


def wait_for_status(message_id: str, status: str, timeout: float = 20) -> JobRecord:
    def reached():
        found = JobRecord.objects.filter(message_id=message_id).first()
        return found if found is not None and found.status == status else None

    return wait_for(reached, timeout=timeout, message=f"job {message_id} to be {status}")


def message_ids_in(broker_redis, hash_key: str) -> set[str]:
    """dramatiq stores messages under a per-enqueue redis_message_id: decode them to find ours."""
    return {dramatiq.Message.decode(data).message_id for data in broker_redis.hvals(hash_key)}


def queued(broker_redis, message_id: str, queue: str = "default") -> bool:
    return message_id in message_ids_in(broker_redis, keys.queue_messages(dramatiq.get_broker().namespace, queue))


def event_names(broker_redis, job_id: str, until: str | None = None) -> list[str]:
    return [event["event"] for event in stream_events(broker_redis, job_id, until)]


@pytest.fixture(scope="module")
def module_worker(start_module_worker):
    return start_module_worker(
        "--processes", "1", "--threads", "2", "--queues", "default", TASKS_DEAD_LETTER_NOTIFIER=NOTIFIER
    )  # fmt: skip


@pytest.fixture
def worker(module_worker, clean_queues):
    return module_worker


def test_enqueue_writes_the_record_before_sending(broker_redis, clean_queues):
    message_id = enqueue(tasks.add, args=(2, 3))
    job = record(message_id)
    assert (job.status, job.actor_name, job.queue_name, job.args, job.attempts) == (
        "pending",
        "add",
        "default",
        [2, 3],
        0,
    )
    assert queued(broker_redis, message_id)
    assert event_names(broker_redis, message_id) == ["enqueued"]


def test_enqueue_without_record_first_sends_at_once_and_the_recorder_writes_the_record(broker_redis, clean_queues):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.tasks.records import wait_until_flushed

    with CaptureQueriesContext(connection) as queries:
        message_id = enqueue(tasks.add, args=(4, 5), record_first=False)
    assert not queries.captured_queries  # no database round-trip before the send
    assert queued(broker_redis, message_id)
    assert event_names(broker_redis, message_id) == ["enqueued"]
    assert wait_until_flushed()
    job = record(message_id)
    assert (job.status, job.actor_name, job.args, job.attempts) == ("pending", "add", [4, 5], 0)


def test_a_late_buffered_pending_record_does_not_undo_a_worker_transition(clean_queues):
    from apps.tasks.records import pending, transition_for, write_transitions

    message = tasks.add.message(5, 6)
    pending_record = pending(message)  # built at send time, flushed after the worker wrote
    write_transitions([transition_for(message, JobStatus.COMPLETED, worker="host:1")])
    write_transitions([pending_record])
    assert record(message.message_id).status == "completed"


def test_the_enqueue_insert_keeps_a_record_a_worker_wrote_first(clean_queues):
    from apps.tasks.records import insert_new, pending, transition_for, write_transitions

    message = tasks.add.message(5, 6)
    pending_record = pending(message)
    write_transitions([transition_for(message, JobStatus.RUNNING, worker="host:1")])
    insert_new(pending_record)  # late: the worker's row stands
    assert (record(message.message_id).status, record(message.message_id).worker) == ("running", "host:1")


def test_enqueue_on_postgresql_prepares_its_insert_once():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's (this suite runs on both databases)")
    ids = [enqueue(tasks.add, args=(index, index)) for index in range(8)]
    assert JobRecord.objects.filter(message_id__in=ids, status="pending").count() == 8
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ['INSERT INTO "tasks_jobrecord"%'],
        )
        assert cursor.fetchone()[0] == 1  # one plan, reused by every enqueue after the fifth


def test_job_records_have_no_pattern_index_on_the_id():
    """Ids are looked up whole; migration 0003 drops the ``_like`` index Django adds on PostgreSQL."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the _like index is PostgreSQL's (this suite runs on both databases)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks_jobrecord'")
        names = {row[0] for row in cursor.fetchall()}
    assert "tasks_jobrecord_pkey" in names and not [name for name in names if name.endswith("_like")]


def test_enqueue_inside_a_transaction_sends_on_commit(broker_redis, clean_queues):
    with transaction.atomic():
        message_id = enqueue(tasks.add, args=(1, 1))
        assert not queued(broker_redis, message_id)
    assert queued(broker_redis, message_id)


def test_rolled_back_enqueue_leaves_no_record_and_no_message(broker_redis, clean_queues):
    namespace = dramatiq.get_broker().namespace
    with pytest.raises(RuntimeError), transaction.atomic():
        message_id = enqueue(tasks.add, args=(1, 1))
        raise RuntimeError("roll back")
    assert not JobRecord.objects.filter(message_id=message_id).exists()
    assert broker_redis.llen(keys.queue(namespace, "default")) == 0


def test_secret_arguments_are_masked_and_big_ones_capped(clean_queues, settings):
    message_id = enqueue(tasks.record_effect, kwargs={"key": "k", "value": "v"})
    assert record(message_id).kwargs == {"key": "k", "value": "v"}
    masked = enqueue("record_effect", args=("k",), kwargs={"value": "v", "api_token": "s3cret"})
    job = record(masked)
    assert job.kwargs["api_token"] == "***"
    assert job.args_complete is False
    big = enqueue(tasks.record_effect, args=("k", "x" * 50_000))
    job = record(big)
    assert job.args["truncated"] is True
    assert job.args["size"] > 50_000
    assert len(json.dumps(job.args)) <= settings.TASK_CONFIG.record_args_max_bytes


def test_completed_job_record(worker, broker_redis):
    message_id = enqueue(tasks.add, args=(2, 3))
    job = wait_for_status(message_id, JobStatus.COMPLETED)
    assert job.result == 5
    assert job.attempts == 1
    assert job.worker.endswith(f":{job.worker.rsplit(':', 1)[1]}") and ":" in job.worker
    assert job.started_at is not None and job.finished_at >= job.started_at >= job.enqueued_at
    assert job.duration_ms is not None
    assert job.error_type == ""
    assert event_names(broker_redis, message_id, until="completed") == ["enqueued", "started", "completed"]


def test_plain_send_is_recorded_too(worker):
    key = f"{dramatiq.get_broker().namespace}:test:{uuid.uuid4().hex}"
    message = tasks.record_effect.send(key, "x")
    job = wait_for_status(message.message_id, JobStatus.COMPLETED)
    assert job.args == [key, "x"]


def test_transient_errors_retry_with_growing_delays_and_complete(worker, broker_redis):
    key = f"{dramatiq.get_broker().namespace}:test:flaky:{uuid.uuid4().hex}"
    message_id = enqueue(tasks.flaky, args=(key, 2))
    job = wait_for_status(message_id, JobStatus.COMPLETED, timeout=30)
    assert job.attempts == 3
    assert job.result == "ok"
    assert job.error_type == "apps.tasks.errors.TransientError"  # the last failure is kept
    assert "transient failure 2 of 2" in job.error_message
    assert "TransientError" in job.traceback
    events = event_names(broker_redis, message_id, until="completed")
    assert events == [
        "enqueued",
        "started", "failed", "retrying",
        "started", "failed", "retrying",
        "started", "completed",
    ]  # fmt: skip
    entries = broker_redis.xrange(keys.events(dramatiq.get_broker().namespace))
    delays = [
        json.loads(fields[b"meta"])["delay_ms"]
        for _, fields in entries
        if fields[b"job_id"].decode() == message_id and fields[b"event"] == b"retrying"
    ]
    # Backoff doubles from min_backoff, with dramatiq's jitter of x U(1, 2): 50 ms, then 100 ms nominal.
    assert 50 <= delays[0] <= 100
    assert 100 <= delays[1] <= 200


@pytest.mark.parametrize(("actor", "error_type"), [("broken", "PermanentError"), ("bad_value", "ValueError")])
def test_permanent_errors_go_to_dead_letter_after_one_attempt(worker, broker_redis, actor, error_type):
    message_id = enqueue(actor, args=("x",))
    job = wait_for_status(message_id, JobStatus.DEAD_LETTER)
    assert job.attempts == 1
    assert job.error_type.endswith(error_type)
    namespace = dramatiq.get_broker().namespace
    # The nack that moves it to the dead letters follows the record's commit.
    dead = keys.dead_letter_messages(namespace, "default")
    wait_for(lambda: message_id in message_ids_in(broker_redis, dead), message="the message in the dead letters")
    notifications = wait_for(lambda: broker_redis.lrange(notifications_key(), 0, -1))
    assert [json.loads(item)["message_id"] for item in notifications] == [message_id]
    assert event_names(broker_redis, message_id, until="dead_letter")[-3:] == ["started", "failed", "dead_letter"]


def test_a_worker_freezes_what_it_loaded_at_boot(worker):
    """Django, the apps and the task modules are out of the collector's generations, so a full
    collection (about 30 ms over them here) does not pause the jobs again and again."""
    message_id = enqueue(tasks.frozen_objects)
    job = wait_for_status(message_id, JobStatus.COMPLETED)
    assert job.result > 10_000
