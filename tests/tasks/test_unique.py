"""Unique jobs: while a job holding a key waits or runs, a second one joins it (or is refused);
once it has finished, the key is free."""

from __future__ import annotations

import dramatiq
import pytest
from django.db import transaction

from apps.tasks import keys
from apps.tasks.enqueue import UNIQUE_TTL_SECONDS, DuplicateJob, enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services.queues import queue_stats
from tests.helpers import wait_for
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_job_with_the_key_joins_the_first_and_its_record_says_so(broker_redis, clean_queues):
    first = enqueue(tasks.add, args=(1, 2), unique_key="report-7")
    second_call = enqueue(tasks.add, args=(1, 2), unique_key="report-7")
    assert second_call == first
    assert queue_stats(("default",))[0].ready == 1  # one message
    joined = JobRecord.objects.exclude(message_id=first).get(actor_name="add")
    assert joined.status == JobStatus.SKIPPED and joined.error_message.startswith(f"joined job {first}:")
    with pytest.raises(DuplicateJob, match="report-7") as refused:
        enqueue(tasks.add, args=(1, 2), unique_key="report-7", on_duplicate="refuse")
    assert refused.value.job_id == first
    assert enqueue(tasks.add, args=(1, 2), unique_key="report-8") != first  # another key


def test_a_finished_holder_frees_the_key(broker_redis, clean_queues):
    first = enqueue(tasks.add, args=(1, 2), unique_key="nightly")
    JobRecord.objects.filter(message_id=first).update(status=JobStatus.COMPLETED)  # as if its release was lost
    assert enqueue(tasks.add, args=(1, 2), unique_key="nightly") != first


def test_a_holder_whose_transaction_rolled_back_frees_the_key_after_its_grace(broker_redis, clean_queues):
    with pytest.raises(RuntimeError), transaction.atomic():
        ghost = enqueue(tasks.add, args=(1, 2), unique_key="ghost")
        raise RuntimeError("roll back")
    assert not JobRecord.objects.filter(message_id=ghost).exists()
    assert enqueue(tasks.add, args=(1, 2), unique_key="ghost") == ghost  # within the grace: it may commit yet
    key = keys.unique(dramatiq.get_broker().namespace, "ghost")
    broker_redis.expire(key, UNIQUE_TTL_SECONDS - 120)  # claimed two minutes ago
    assert enqueue(tasks.add, args=(1, 2), unique_key="ghost") not in (ghost, None)


@pytest.mark.worker
def test_a_task_unique_by_its_arguments_runs_once_at_a_time(start_worker, broker_redis, clean_queues):
    start_worker("--processes", "1", "--threads", "2", "--queues", "default")
    first = enqueue(tasks.sync_account, args=(42, 1.0))
    wait_for(lambda: JobRecord.objects.filter(message_id=first, status=JobStatus.RUNNING).exists(), timeout=30,
             message="the first sync running")  # fmt: skip
    assert enqueue(tasks.sync_account, args=(42, 1.0)) == first  # joins the running one
    other_account = enqueue(tasks.sync_account, args=(7,))
    wait_for(lambda: JobRecord.objects.filter(message_id__in=[first, other_account],
                                              status=JobStatus.COMPLETED).count() == 2, timeout=30,
             message="both accounts synced")  # fmt: skip
    # Finished: the worker freed the key, so the next sync is a new job.
    wait_for(lambda: not broker_redis.exists(keys.unique(dramatiq.get_broker().namespace, "sync_account:account-42")),
             timeout=10, message="the key freed")  # fmt: skip
    again = enqueue(tasks.sync_account, args=(42,))
    assert again != first
    wait_for(lambda: JobRecord.objects.filter(message_id=again, status=JobStatus.COMPLETED).exists(), timeout=30)
