"""The reindex workflow's activities: thin, synchronous, run in the worker's activity threads.

Django is imported inside each function: this module is imported (passed through) by the workflow
module, which the sandbox re-imports.
"""

from __future__ import annotations

from temporalio import activity

from apps.knowbase.reindex.messages import BatchOutcome, DocumentPage, ReindexBatch
from apps.workflows.heartbeat import heartbeating

WORKFLOW_NAME = "ReindexKnowledgeWorkflow"


@activity.defn(name="reindex_count_documents")
def count_documents() -> int:
    from apps.knowbase.reindex import backups

    return backups.count_documents()


@activity.defn(name="reindex_list_documents")
def list_documents(page: DocumentPage) -> list[int]:
    from apps.knowbase.reindex import backups

    return backups.document_ids_after(page.after, page.limit)


@activity.defn(name="reindex_batch")
def reindex_batch(batch: ReindexBatch) -> BatchOutcome:
    """Back up and reprocess each document of the batch.

    The heartbeat details say how far the batch got (updated after each document, sent by a heartbeat
    thread meanwhile, however long a document takes); a retry (worker killed, time-out) starts from
    there. Each document is shielded from cancellation, so a cancel lands between documents.
    """
    from apps.knowbase.reindex import backups
    from apps.knowbase.services.processing import COMPLETED, FAILED

    details = activity.info().heartbeat_details
    start = int(details[0]) if details else 0
    outcome = BatchOutcome(number=batch.number, resumed_at=start)
    with heartbeating(start) as heartbeat:
        for position in range(start, len(batch.document_ids)):
            document_id = batch.document_ids[position]
            with activity.shield_thread_cancel_exception():
                result = backups.reindex_document(batch.job_id, document_id)
            if result in (COMPLETED, backups.ALREADY_DONE):
                outcome.completed += 1
            elif result == FAILED:
                outcome.failed += 1
                outcome.failed_ids.append(document_id)
            else:
                outcome.skipped += 1
            heartbeat.progress(position + 1)
            if batch.throttle_ms:
                activity.wait_for_cancelled_sync(batch.throttle_ms / 1000)
    _progress(batch, outcome)
    return outcome


def _progress(batch: ReindexBatch, outcome: BatchOutcome) -> None:
    from apps.workflows.records import publish, temporal_event

    meta = {
        "batch": batch.number,
        "documents": len(batch.document_ids),
        "done": batch.done_before + len(batch.document_ids),
        "total": batch.total,
        "completed": outcome.completed,
        "failed": outcome.failed,
        "skipped": outcome.skipped,
        "resumed_at": outcome.resumed_at,
    }
    info = activity.info()
    publish([temporal_event("progress", job_id=batch.job_id, queue=info.task_queue, actor=WORKFLOW_NAME, meta=meta)])


@activity.defn(name="reindex_restore_backups")
def restore_backups(job_id: str) -> int:
    """Compensation: put the previous chunks back."""
    from apps.knowbase.reindex import backups

    return backups.restore(job_id)


@activity.defn(name="reindex_drop_backups")
def drop_backups(job_id: str) -> int:
    """The final step, after approval: the previous chunks are dropped for good."""
    from apps.knowbase.reindex import backups

    return backups.drop(job_id)
