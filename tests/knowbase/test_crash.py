"""A knowledge worker SIGKILLed mid-document: the document is processed again within the recovery
window, once. Its own module: the shared worker of ``test_worker`` would take the document first."""

from __future__ import annotations

import time
import uuid

import pytest

from apps.knowbase.models import Document, DocumentStatus
from apps.tasks.models import JobStatus
from apps.tasks.services import workers
from tests.helpers import wait_for

from .conftest import WORKER_ARGS, job_records_for, wait_for_document, wait_until_ready, worker_env
from .embedders import hang_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

#: The issue's bound, default settings, one host: a survivor's heartbeat (5 s) finds the dead pid.
RECOVERY_SECONDS = 10


def test_a_document_whose_worker_is_killed_is_processed_within_ten_seconds_once(
    start_worker, knowbase_media_root, broker_redis, clean_queues
):
    env = worker_env(knowbase_media_root, TASKS_MAINTENANCE_CHANCE="0")
    doomed = wait_until_ready(start_worker(*WORKER_ARGS, env=env))
    token = uuid.uuid4().hex
    document = Document.objects.create(title="Crash", content=f"Processed after a crash. EMBEDDER-HANGS-ONCE-{token}")
    wait_for(lambda: broker_redis.get(hang_key(token)) == b"1", timeout=30, message="the first worker to embed")
    claimed = Document.objects.get(pk=document.pk)
    (doomed_process,) = workers.live_workers()
    assert claimed.status == DocumentStatus.PROCESSING
    assert claimed.claimed_by.startswith(f"{doomed_process.host}:{doomed_process.pid}@")

    survivor = wait_until_ready(start_worker(*WORKER_ARGS, env=env))
    wait_for(lambda: len(workers.live_workers()) == 2, timeout=30, message="the survivor to register")
    doomed.kill()
    killed_at = time.monotonic()
    done = wait_for_document(document.pk, statuses=("completed",), timeout=RECOVERY_SECONDS, worker=survivor)
    recovered_in = time.monotonic() - killed_at
    print(f"\ndocument completed {recovered_in:.1f}s after its worker was SIGKILLed")

    assert (done.chunk_count, done.chunks.count()) == (1, 1)  # processed once: no duplicate chunks
    assert done.claimed_by != claimed.claimed_by
    wait_for(
        lambda: [record.status for record in job_records_for(document.pk)] == [JobStatus.COMPLETED],
        timeout=10,
        message="the document's one job record to complete",
    )
