"""Dead letters: list, requeue (the record shows the new attempt), delete; retention purge."""

from __future__ import annotations

import uuid
from datetime import timedelta

import dramatiq
import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.tasks import keys
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.records import wait_until_flushed
from apps.tasks.services import dead_letters
from tests.helpers import wait_for
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_status(message_id: str, status: str, attempts: int | None = None, timeout: float = 20) -> JobRecord:
    def reached():
        found = JobRecord.objects.filter(message_id=message_id).first()
        if found is None or found.status != status:
            return None
        return found if attempts is None or found.attempts == attempts else None

    return wait_for(reached, timeout=timeout, message=f"job {message_id} to be {status}")


@pytest.fixture(scope="module")
def module_worker(start_module_worker):
    return start_module_worker("--processes", "1", "--threads", "2", "--queues", "default")


@pytest.fixture
def worker(module_worker, clean_queues):
    return module_worker


def guard_key() -> str:
    return f"{dramatiq.get_broker().namespace}:test:guard:{uuid.uuid4().hex}"


@pytest.mark.worker
def test_list_count_and_requeue_a_dead_letter(worker, broker_redis):
    key = guard_key()
    message_id = enqueue(tasks.sleepy_guard, args=(key,))
    wait_for_status(message_id, JobStatus.DEAD_LETTER)
    assert wait_for(lambda: dead_letters.count_dead_letters("default")["default"] == 1)

    (letter,) = dead_letters.list_dead_letters("default")
    assert letter.message_id == message_id
    assert letter.actor_name == "sleepy_guard"
    assert letter.as_dict()["args"] == [key]
    assert "PermanentError" in JobRecord.objects.get(message_id=message_id).traceback

    broker_redis.set(key, "1")  # the cause is fixed: the requeued job can succeed
    assert dead_letters.requeue_dead_letter(message_id) == message_id
    job = wait_for_status(message_id, JobStatus.COMPLETED)
    assert job.attempts == 2  # the new attempt counts after the first
    assert dead_letters.count_dead_letters("default")["default"] == 0


@pytest.mark.worker
def test_requeue_all_and_delete(worker, broker_redis):
    ids = [enqueue(tasks.sleepy_guard, args=(guard_key(),)) for _ in range(3)]
    for message_id in ids:
        wait_for_status(message_id, JobStatus.DEAD_LETTER)
    wait_for(lambda: dead_letters.count_dead_letters("default")["default"] == 3)

    dead_letters.delete_dead_letter(ids[0])
    assert {letter.message_id for letter in dead_letters.list_dead_letters()} == set(ids[1:])
    with pytest.raises(dead_letters.DeadLetterNotFound):
        dead_letters.delete_dead_letter(ids[0])

    assert sorted(dead_letters.requeue_all("default")) == sorted(ids[1:])
    for message_id in ids[1:]:
        wait_for_status(message_id, JobStatus.DEAD_LETTER, attempts=2)  # guard still missing: dead again


def test_unknown_queue_lists_the_valid_ones(broker_redis):
    with pytest.raises(dead_letters.UnknownQueueError, match="unknown queue 'nope'; configured queues: default"):
        dead_letters.list_dead_letters("nope")


def test_corrupt_dead_letter_is_listed_and_can_only_be_deleted(broker_redis, clean_queues):
    namespace = dramatiq.get_broker().namespace
    broker_redis.zadd(keys.dead_letters(namespace, "low"), {"corrupt-1": 1_700_000_000_000})
    broker_redis.hset(keys.dead_letter_messages(namespace, "low"), "corrupt-1", b"\xff\x00not json")
    (letter,) = dead_letters.list_dead_letters("low")
    assert letter.message is None and letter.decode_error
    with pytest.raises(dead_letters.CorruptMessageError, match="cannot be decoded"):
        dead_letters.requeue_dead_letter("corrupt-1")
    dead_letters.delete_dead_letter("corrupt-1")
    assert dead_letters.count_dead_letters("low")["low"] == 0


def make_record(message_id: str, status: str, age_days: float) -> JobRecord:
    moment = timezone.now() - timedelta(days=age_days)
    return JobRecord.objects.create(
        message_id=message_id, actor_name="add", queue_name="default", status=status,
        enqueued_at=moment, updated_at=moment,
    )  # fmt: skip


def test_retention_purge_removes_only_old_finished_records():
    make_record("old-completed", JobStatus.COMPLETED, 8)
    make_record("old-dead", JobStatus.DEAD_LETTER, 30)
    make_record("old-but-running", JobStatus.RUNNING, 8)
    make_record("old-but-retrying", JobStatus.RETRYING, 8)
    make_record("recent-completed", JobStatus.COMPLETED, 6)
    call_command("purge_job_records")
    assert set(JobRecord.objects.values_list("message_id", flat=True)) == {
        "old-but-running",
        "old-but-retrying",
        "recent-completed",
    }
    call_command("purge_job_records", "--days", "1")
    assert set(JobRecord.objects.values_list("message_id", flat=True)) == {"old-but-running", "old-but-retrying"}


def test_late_transition_never_overwrites_a_newer_one(broker_redis):
    from apps.tasks.records import Transition, write_transitions

    now = timezone.now()
    base = {"message_id": "m-order", "actor_name": "add", "queue_name": "default", "enqueued_at": now}
    write_transitions([Transition(status="completed", attempts=2, updated_at=now, **base)])
    write_transitions([Transition(status="retrying", attempts=1, updated_at=now - timedelta(seconds=1), **base)])
    job = JobRecord.objects.get(message_id="m-order")
    assert (job.status, job.attempts) == ("completed", 2)
    assert wait_until_flushed()
