"""A Temporal worker SIGKILLed in the middle of a reindex: a new worker finishes it within seconds
(the default heartbeat time-out), and the batches completed before the kill are not run again."""

from __future__ import annotations

import re
import time
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
#: How soon after the kill the interrupted batch must run again: the default heartbeat time-out (5 s),
#: then the retry's 1 s backoff, polling and a busy host.
TAKEOVER_SECONDS = 10.0
#: The same slack when the second worker is ready only after the heartbeat timed out.
TAKEOVER_SLACK = 5.0


def backups(job_id: str) -> int:
    return DocumentBackup.objects.filter(job_id=job_id).count()


def processed_in(log: str) -> set[int]:
    """Documents a worker processed, from the knowbase's per-document log line."""
    return {int(number) for number in re.findall(r"Document (\d+) completed in", log)}


def batch_starts(broker_redis, job_id: str) -> int:
    events = stream_events(broker_redis, job_id)
    return sum(1 for event in events if event["event"] == "activity_started" and event["actor"] == "reindex_batch")


def test_a_killed_worker_is_replaced_and_completed_batches_are_not_redone(
    start_temporal_worker, clean_queues, broker_redis
):
    ids = indexed_documents(DOCUMENTS)
    original = chunk_ids(ids)
    first = start_temporal_worker()
    # The default heartbeat time-out: it alone says how soon the interrupted batch moves on.
    job_id = start_reindex(batch_size=BATCH_SIZE, throttle_ms=400, require_approval=False)

    def inside_second_batch() -> bool:
        # A batch backs each document up before processing it: a backup beyond the first batch means the
        # kill lands inside a running batch activity (not between two of them).
        return backups(job_id) > BATCH_SIZE and completed_activities(job_id, "reindex_batch") >= 1

    wait_for(inside_second_batch, timeout=60, interval=0.05, message="the second batch to be running")
    first.kill()
    killed_at = time.monotonic()
    batch_starts_before = batch_starts(broker_redis, job_id)
    done = completed_activities(job_id, "reindex_batch")  # what the server recorded before the worker died
    assert 1 <= done < DOCUMENTS // BATCH_SIZE, "the kill must land in the middle of the reindex"
    finished_ids = ids[: done * BATCH_SIZE]
    finished_chunks = chunk_ids(finished_ids)
    assert all(set(finished_chunks[doc]).isdisjoint(original[doc]) for doc in finished_ids)

    second = start_temporal_worker()
    ready_at = time.monotonic()

    # The batch the dead worker held runs again once its heartbeat timed out (and a worker is there);
    # a dead worker publishes nothing, so any batch start from now on is the second worker's.
    wait_for(lambda: batch_starts(broker_redis, job_id) > batch_starts_before, timeout=120, interval=0.1,
             message="a batch to start on the second worker")  # fmt: skip
    takeover = time.monotonic() - killed_at
    bound = max(TAKEOVER_SECONDS, ready_at - killed_at + TAKEOVER_SLACK)
    assert takeover <= bound, f"the second attempt started {takeover:.1f}s after the kill (bound {bound:.1f}s)"
    record = wait_for_record(job_id, JobStatus.COMPLETED, JobStatus.FAILED, timeout=60)
    print(f"takeover {takeover:.1f}s after the kill (second worker ready after {ready_at - killed_at:.1f}s)")
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
