"""A Temporal worker SIGKILLed in the middle of a reindex: a new worker finishes it, and the batches
completed before the kill are not run again."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from apps.knowbase.models import DocumentBackup
from apps.tasks.models import JobStatus
from tests.helpers import stream_events, wait_for
from tests.workflows.helpers import completed_activities, wait_for_record

from .documents import all_completed, chunk_ids, indexed_documents, start_reindex

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

BATCH_SIZE = 2
DOCUMENTS = 8


def backups(job_id: str) -> int:
    return DocumentBackup.objects.filter(job_id=job_id).count()


def processed_in(log: str) -> set[int]:
    """Documents a worker processed, from the knowbase's per-document log line."""
    return {int(number) for number in re.findall(r"Document (\d+) completed in", log)}


def test_a_killed_worker_is_replaced_and_completed_batches_are_not_redone(
    start_temporal_worker, clean_queues, broker_redis
):
    ids = indexed_documents(DOCUMENTS)
    original = chunk_ids(ids)
    first = start_temporal_worker()
    job_id = start_reindex(batch_size=BATCH_SIZE, throttle_ms=400, require_approval=False, heartbeat_timeout_seconds=2)

    def inside_second_batch() -> bool:
        # A batch backs each document up before processing it: a backup beyond the first batch means the
        # kill lands inside a running batch activity (not between two of them).
        return backups(job_id) > BATCH_SIZE and completed_activities(job_id, "reindex_batch") >= 1

    wait_for(inside_second_batch, timeout=60, interval=0.05, message="the second batch to be running")
    first.kill()
    done = completed_activities(job_id, "reindex_batch")  # what the server recorded before the worker died
    assert 1 <= done < DOCUMENTS // BATCH_SIZE, "the kill must land in the middle of the reindex"
    finished_ids = ids[: done * BATCH_SIZE]
    finished_chunks = chunk_ids(finished_ids)
    assert all(set(finished_chunks[doc]).isdisjoint(original[doc]) for doc in finished_ids)

    second = start_temporal_worker()
    record = wait_for_record(job_id, JobStatus.COMPLETED, JobStatus.FAILED, timeout=120)
    assert record.status == JobStatus.COMPLETED, record.error_message
    assert record.result["documents"] == DOCUMENTS and record.result["batches"] == DOCUMENTS // BATCH_SIZE
    assert record.worker.endswith(f":{second.pid}")

    # The batches completed before the kill: chunks untouched since, and never processed by the new worker.
    assert chunk_ids(finished_ids) == finished_chunks
    assert processed_in(second.log()).isdisjoint(finished_ids)
    # Every document was reindexed, the rest by one of the two workers.
    after = chunk_ids(ids)
    assert all(set(after[doc]).isdisjoint(original[doc]) for doc in ids) and all_completed(ids)
    assert backups(job_id) == 0
    # Each completed batch activity started exactly once; only the one in flight at the kill ran again.
    starts = Counter(
        event["meta"]["activity_id"]
        for event in stream_events(broker_redis, job_id)
        if event["event"] == "activity_started" and event["actor"] == "reindex_batch"
    )
    batches = sorted(starts, key=int)
    assert len(batches) == DOCUMENTS // BATCH_SIZE
    assert [starts[batch] for batch in batches[:done]] == [1] * done
    assert starts[batches[done]] in (1, 2)
