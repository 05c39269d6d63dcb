"""``ReindexKnowledgeWorkflow``: re-index the whole knowledge base, durably, with a human sign-off.

1. Count the documents, then walk them by id, page by page, in batches; each batch is an activity
   with a retry policy, a time-out and a heartbeat (a retried batch resumes at its last document).
   Every document is backed up before it is processed again, so the old index is still there.
2. Wait for the ``approve`` signal (``require_approval``), then drop the backups: the final step.
3. Cancelled (or a batch failing for good) before that: compensate, restoring every backup, then end
   cancelled (or failed, and its progress says so). A cancel arriving after approval is too late: the
   drop completes.

Signals ``pause`` / ``resume`` hold the walk between batches; the ``progress`` query says where it
stands. Completed batches are history: a worker restart replays them, it never runs them again.
Long walks continue as new every ``batches_per_run`` batches (or when Temporal suggests it),
carrying the progress. This module is re-imported by the workflow sandbox: no Django here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from apps.knowbase.reindex import activities
    from apps.knowbase.reindex.messages import (
        BatchOutcome,
        DocumentPage,
        ReindexBatch,
        ReindexProgress,
        ReindexRequest,
        ReindexResult,
    )

#: Compensation and the final drop must happen eventually: retried without limit.
_UNTIL_DONE = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@workflow.defn(name="ReindexKnowledgeWorkflow")
class ReindexKnowledgeWorkflow:
    def __init__(self) -> None:
        self._progress = ReindexProgress()
        self._finalising = False

    # --- signals and query ---------------------------------------------------------------------

    @workflow.signal
    def pause(self) -> None:
        """Hold before the next batch (the running one finishes)."""
        self._progress.paused = True

    @workflow.signal
    def resume(self) -> None:
        self._progress.paused = False

    @workflow.signal
    def approve(self) -> None:
        """Sign off the new index: the old chunks may be dropped (may come before indexing ends)."""
        self._progress.approved = True

    @workflow.query
    def progress(self) -> ReindexProgress:
        return self._progress

    # --- the run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ReindexRequest) -> ReindexResult:
        if request.carried is not None:
            carried = request.carried
            # Signals that reached the previous run stand; ones already received here win.
            carried.paused = carried.paused or self._progress.paused
            carried.approved = carried.approved or self._progress.approved
            self._progress = carried
        progress = self._progress
        job_id = workflow.info().workflow_id
        try:
            if progress.phase == "starting":
                progress.total = await workflow.execute_activity(
                    activities.count_documents, **self._quick_options(request)
                )
                progress.phase = "indexing"
            await self._index(request, job_id)
            _raise_if_cancel_requested()
            if request.require_approval and not progress.approved:
                self._set_phase("awaiting_approval")
                await workflow.wait_condition(lambda: progress.approved)
            self._finalising = True
            self._set_phase("finalising")
            progress.dropped = await self._drop(request, job_id)
        except (asyncio.CancelledError, ActivityError) as exc:
            if is_cancelled_exception(exc) and workflow.cancellation_reason() is None:
                raise  # not a cancel request: the worker is evicting this run from its cache
            if not self._finalising:
                await self._compensate(request, job_id, "cancelled" if is_cancelled_exception(exc) else "failed")
                raise
            # Approved already: the old chunks are being dropped; finish that, the cancel came too late.
            progress.dropped = await self._drop(request, job_id)
        self._set_phase("completed")
        return ReindexResult(
            outcome="completed",
            documents=progress.done,
            completed=progress.completed,
            failed=progress.failed,
            skipped=progress.skipped,
            batches=progress.batches_done,
            dropped_backups=progress.dropped,
        )

    async def _index(self, request: ReindexRequest, job_id: str) -> None:
        progress = self._progress
        batches_this_run = 0
        while True:
            page = await workflow.execute_activity(
                activities.list_documents,
                DocumentPage(after=progress.cursor, limit=request.page_size),
                **self._quick_options(request),
            )
            if not page:
                return
            for start in range(0, len(page), request.batch_size):
                _raise_if_cancel_requested()
                if progress.paused:
                    self._set_phase("paused")
                    await workflow.wait_condition(lambda: not progress.paused)
                    self._set_phase("indexing")
                ids = page[start : start + request.batch_size]
                outcome = await self._run_batch(request, job_id, ids)
                progress.batches_done += 1
                progress.done += len(ids)
                progress.completed += outcome.completed
                progress.failed += outcome.failed
                progress.skipped += outcome.skipped
                progress.cursor = ids[-1]
                progress.total = max(progress.total, progress.done)
                workflow.set_current_details(f"reindexed {progress.done} of {progress.total} documents")
                batches_this_run += 1
                if batches_this_run >= request.batches_per_run or workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(dataclasses.replace(request, carried=progress))

    async def _run_batch(self, request: ReindexRequest, job_id: str, ids: list[int]) -> BatchOutcome:
        progress = self._progress
        batch = ReindexBatch(
            job_id=job_id,
            number=progress.batches_done,
            document_ids=ids,
            throttle_ms=request.throttle_ms,
            total=progress.total,
            done_before=progress.done,
        )
        return await workflow.execute_activity(
            activities.reindex_batch,
            batch,
            start_to_close_timeout=timedelta(seconds=request.activity_timeout_seconds),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(minutes=1),
                maximum_attempts=request.max_attempts,
            ),
            # Compensation must not start while a batch is still writing chunks.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"batch {batch.number}: {len(ids)} documents",
        )

    async def _compensate(self, request: ReindexRequest, job_id: str, outcome: str) -> None:
        """Restore every backup, then end in phase ``outcome`` (cancelled or failed)."""
        self._set_phase("compensating")
        self._progress.restored = await workflow.execute_activity(
            activities.restore_backups,
            job_id,
            start_to_close_timeout=timedelta(seconds=request.activity_timeout_seconds),
            retry_policy=_UNTIL_DONE,
        )
        self._set_phase(outcome)

    async def _drop(self, request: ReindexRequest, job_id: str) -> int:
        return await workflow.execute_activity(
            activities.drop_backups,
            job_id,
            start_to_close_timeout=timedelta(seconds=request.activity_timeout_seconds),
            retry_policy=_UNTIL_DONE,
        )

    def _set_phase(self, phase: str) -> None:
        self._progress.phase = phase
        workflow.set_current_details(f"{phase}: {self._progress.done} of {self._progress.total} documents")

    @staticmethod
    def _quick_options(request: ReindexRequest) -> dict:
        return {
            "start_to_close_timeout": timedelta(seconds=request.activity_timeout_seconds),
            "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=request.max_attempts),
        }


def _raise_if_cancel_requested() -> None:
    """A batch that finished despite a cancel request (it waits for its activity) swallows the request:
    look for it between steps, so a cancel always ends in compensation."""
    reason = workflow.cancellation_reason()
    if reason is not None:
        raise asyncio.CancelledError(reason or "cancel requested")
