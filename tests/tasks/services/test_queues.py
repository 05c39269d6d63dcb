"""Queue purges go through the records package: each waiting job becomes skipped with its event,
and a worker's newer transition is never undone."""

from __future__ import annotations

import pytest

from apps.tasks import records
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services.queues import purge_queue
from tests.helpers import stream_events
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_purge_skips_waiting_jobs_with_the_reason_and_an_event(broker_redis, clean_queues):
    waiting = [enqueue(tasks.low_noop) for _ in range(3)]
    assert purge_queue("low") == 3
    for message_id in waiting:
        job = JobRecord.objects.get(pk=message_id)
        assert (job.status, job.error_message) == (JobStatus.SKIPPED, "purged from queue 'low'")
        assert job.finished_at is not None
        [event] = [event for event in stream_events(broker_redis, message_id) if event["event"] == "skipped"]
        assert event["meta"] == {"reason": "purged from queue 'low'"}


def test_a_purge_never_overwrites_a_transition_written_after_it_began(broker_redis, clean_queues, monkeypatch):
    message_id = enqueue(tasks.low_noop)
    job = JobRecord.objects.get(pk=message_id)
    record = records.record

    def a_worker_finishes_it_meanwhile(transition, **options):
        # Between the purge's query and its write, a worker records the job completed.
        completed = records.Transition(
            message_id=message_id, actor_name=job.actor_name, queue_name="low", status=JobStatus.COMPLETED,
            enqueued_at=job.enqueued_at,
        )  # fmt: skip
        record(completed, wait=True, publish=False)
        return record(transition, **options)

    monkeypatch.setattr(records, "record", a_worker_finishes_it_meanwhile)
    purge_queue("low")
    assert JobRecord.objects.get(pk=message_id).status == JobStatus.COMPLETED
