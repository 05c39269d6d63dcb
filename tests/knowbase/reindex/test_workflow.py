"""ReindexKnowledgeWorkflow on a real Temporal dev server and a real ``runtemporal`` worker:
completion, the approval gate, pause/resume, cancel with compensation."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.knowbase.models import DocumentBackup
from apps.tasks.models import JobBackend, JobStatus
from apps.workflows import control
from apps.workflows.records import CANCELLED_ERROR
from tests.helpers import stream_events, wait_for
from tests.workflows.helpers import history, query_progress, wait_for_phase, wait_for_record, workflow_status

from .documents import all_completed, chunk_ids, chunks, indexed_documents, start_reindex

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def worker(module_temporal_worker, clean_queues):
    return module_temporal_worker


def backups(job_id: str) -> int:
    return DocumentBackup.objects.filter(job_id=job_id).count()


def test_reindex_completes_once_approved_and_approval_gates_the_final_step(worker, broker_redis):
    ids = indexed_documents(5)
    before = chunk_ids(ids)
    job_id = start_reindex(batch_size=2, require_approval=True)

    waiting = wait_for_phase(job_id, "awaiting_approval")
    assert (waiting["done"], waiting["total"], waiting["batches_done"], waiting["completed"]) == (5, 5, 3, 5)
    # Every document has new chunks, and the old ones are still kept: nothing is dropped before approval.
    after = chunk_ids(ids)
    assert all(set(after[doc]).isdisjoint(before[doc]) for doc in ids) and all_completed(ids)
    assert backups(job_id) == 5
    assert not any(event["name"] == "reindex_drop_backups" for event in history(job_id))
    assert wait_for_record(job_id, JobStatus.RUNNING).backend == JobBackend.TEMPORAL

    control.signal(job_id, "approve")
    record = wait_for_record(job_id, JobStatus.COMPLETED, JobStatus.FAILED)
    assert record.status == JobStatus.COMPLETED, record.error_message
    assert record.result == {
        "outcome": "completed", "documents": 5, "completed": 5, "failed": 0, "skipped": 0, "batches": 3,
        "dropped_backups": 5,
    }  # fmt: skip
    assert backups(job_id) == 0 and chunk_ids(ids) == after
    events = history(job_id)
    approved_at = events.index({"type": "WORKFLOW_EXECUTION_SIGNALED", "name": "approve"})
    dropped_at = events.index({"type": "ACTIVITY_TASK_SCHEDULED", "name": "reindex_drop_backups"})
    assert approved_at < dropped_at

    # Lifecycle and progress in dramatiq's stream, marked as Temporal's.
    stream = stream_events(broker_redis, job_id, until="completed")
    assert {event["source"] for event in stream} == {"temporal"}
    names = [event["event"] for event in stream]
    assert names[:2] == ["enqueued", "started"] and names[-1] == "completed"
    assert "signalled" in names
    progress = [event["meta"] for event in stream if event["event"] == "progress"]
    assert [(meta["batch"], meta["done"], meta["total"]) for meta in progress] == [(0, 2, 5), (1, 4, 5), (2, 5, 5)]
    assert names.count("activity_started") == names.count("activity_completed")


def test_pause_holds_the_next_batch_until_resume(worker):
    ids = indexed_documents(8)
    job_id = start_reindex(batch_size=2, throttle_ms=250, require_approval=True)
    wait_for(lambda: backups(job_id) >= 1, timeout=60, message="the first batch to start")
    control.signal(job_id, "pause")
    paused = wait_for_phase(job_id, "paused")
    assert paused["paused"] and paused["batches_done"] < 4
    control.signal(job_id, "approve")  # approval may come early: it does not wait for indexing to end
    wait_for(lambda: query_progress(job_id)["approved"], timeout=30, message="the approval to be seen")
    control.signal(job_id, "resume")
    record = wait_for_record(job_id, JobStatus.COMPLETED, JobStatus.FAILED)
    assert record.status == JobStatus.COMPLETED and record.result["documents"] == 8
    assert all_completed(ids) and backups(job_id) == 0

    events = history(job_id)
    paused_at = events.index({"type": "WORKFLOW_EXECUTION_SIGNALED", "name": "pause"})
    resumed_at = events.index({"type": "WORKFLOW_EXECUTION_SIGNALED", "name": "resume"})
    held = [event for event in events[paused_at:resumed_at] if event["type"] == "ACTIVITY_TASK_SCHEDULED"]
    assert held == [], "no batch may be scheduled while paused"


def test_cancel_during_indexing_restores_the_previous_chunks(worker, broker_redis):
    ids = indexed_documents(10)
    before = chunks(ids)
    job_id = start_reindex(batch_size=2, throttle_ms=300, require_approval=True)
    wait_for(lambda: backups(job_id) >= 3, timeout=60, message="the second batch to start")

    control.cancel(job_id, by="ops", reason="test")
    record = wait_for_record(job_id, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.COMPLETED)
    assert (record.status, record.error_type, record.error_message) == (
        JobStatus.CANCELLED, CANCELLED_ERROR, "cancelled by ops: test",
    )  # fmt: skip
    wait_for(lambda: workflow_status(job_id) == "CANCELED", timeout=30)  # it closes just after its record
    progress = query_progress(job_id)
    assert progress["phase"] == "cancelled" and 3 <= progress["restored"] < 10
    # The very same chunks (ids, text, vectors) as before the reindex, and no backup left behind.
    assert chunks(ids) == before and all_completed(ids)
    assert backups(job_id) == 0
    names = [event["event"] for event in stream_events(broker_redis, job_id, until="cancelled")]
    assert names.index("cancel_requested") < names.index("cancelled")
    restore = [event for event in history(job_id) if event["name"] == "reindex_restore_backups"]
    assert [event["type"] for event in restore] == ["ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_COMPLETED"]


def test_cancel_while_awaiting_approval_restores_every_document(worker):
    ids = indexed_documents(4)
    before = chunks(ids)
    job_id = start_reindex(batch_size=3, require_approval=True)
    wait_for_phase(job_id, "awaiting_approval")
    assert chunk_ids(ids) != {doc: [pk for pk, _, _ in rows] for doc, rows in before.items()}

    control.cancel(job_id, by="ops")
    record = wait_for_record(job_id, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.COMPLETED)
    assert (record.status, record.error_message) == (JobStatus.CANCELLED, "cancelled by ops")
    assert query_progress(job_id)["restored"] == 4
    assert chunks(ids) == before and backups(job_id) == 0


def test_a_document_edited_during_the_reindex_keeps_its_new_chunks_on_restore(worker):
    from apps.knowbase.models import Document
    from apps.knowbase.services.processing import process_document

    ids = indexed_documents(2)
    before = chunks(ids)
    job_id = start_reindex(batch_size=2, require_approval=True)
    wait_for_phase(job_id, "awaiting_approval")
    edited = Document.objects.get(pk=ids[0])
    edited.content = "A newer version, written while the reindex waited for approval."
    edited.save()
    process_document(edited.pk)

    control.cancel(job_id, by="ops")
    wait_for_record(job_id, JobStatus.CANCELLED)
    after = chunks(ids)
    assert after[ids[1]] == before[ids[1]]
    assert [text for _, text, _ in after[ids[0]]] == ["A newer version, written while the reindex waited for approval."]


def test_a_long_walk_continues_as_new_and_a_cancel_still_restores_every_run_s_work(worker):
    ids = indexed_documents(5)
    before = chunks(ids)
    job_id = start_reindex(batch_size=1, batches_per_run=2, require_approval=True)
    waiting = wait_for_phase(job_id, "awaiting_approval")
    assert (waiting["done"], waiting["batches_done"], waiting["total"]) == (5, 5, 5)
    record = wait_for_record(job_id, JobStatus.RUNNING)
    started_at = record.started_at

    control.cancel(job_id, by="ops")
    record = wait_for_record(job_id, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.COMPLETED)
    assert record.status == JobStatus.CANCELLED and record.started_at == started_at  # one job across its runs
    assert query_progress(job_id)["restored"] == 5
    assert chunks(ids) == before and backups(job_id) == 0

    # One row per workflow id: its latest run, and how many runs it took.
    def rows() -> list[dict]:
        listed = control.list_workflows(workflow_type="ReindexKnowledgeWorkflow", limit=50)
        return [row for row in listed if row["job_id"] == job_id]

    row = wait_for(lambda: (found := rows()) and found[0]["status"] == "CANCELED" and found, timeout=30)
    assert [(r["status"], r["runs"], r["record_status"]) for r in row] == [("CANCELED", 3, "cancelled")]
    out = StringIO()
    call_command("workflows", "list", "--type", "ReindexKnowledgeWorkflow", stdout=out)
    lines = out.getvalue().splitlines()
    mine = [line for line in lines if job_id in line]
    assert len(mine) == 1, lines
    # Columns are as wide as their content: each value starts under its header.
    header = lines[0]
    for column, value in (("status", "CANCELED"), ("runs", "3"), ("record", "cancelled")):
        assert mine[0][header.index(column) :].split(" ", 1)[0] == value, lines


def test_a_batch_failing_for_good_restores_and_fails_without_saying_cancelled(worker):
    ids = indexed_documents(4)
    before = chunks(ids)
    # The batch outlasts its start-to-close time-out and has no second attempt.
    job_id = start_reindex(batch_size=4, throttle_ms=1500, activity_timeout_seconds=2, max_attempts=1)
    record = wait_for_record(job_id, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.COMPLETED)
    assert (record.status, record.error_type) == (JobStatus.FAILED, "temporalio.exceptions.TimeoutError")
    wait_for(lambda: workflow_status(job_id) == "FAILED", timeout=30)
    progress = query_progress(job_id)
    assert progress["phase"] == "failed" and progress["restored"] >= 1
    assert chunks(ids) == before and backups(job_id) == 0
