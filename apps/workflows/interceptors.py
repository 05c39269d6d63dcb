"""Lifecycle events and job records from the Temporal worker, in dramatiq's stream and table.

Activities: ``activity_started`` / ``activity_completed`` / ``activity_retrying`` / ``activity_failed``
/ ``activity_cancelled`` events, handed to the process's batching recorder (never a blocking call
on the worker's event loop). Workflows: ``started`` / ``completed`` / ``failed`` / ``cancelled``,
recorded by a local activity so the record is written before the workflow's result is visible.
Both with ``source: "temporal"`` and the workflow id as ``job_id``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, is_cancelled_exception
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from apps.workflows.failures import dotted_name, error_type
from apps.workflows.lifecycle import RECORD_ACTIVITY, WorkflowEvent

#: The recording activity reports on others; events about it would only be noise.
_QUIET_ACTIVITIES = frozenset({RECORD_ACTIVITY})
_RECORD_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)


def _is_cancellation(exc: BaseException) -> bool:
    from temporalio.exceptions import CancelledError

    return isinstance(exc, asyncio.CancelledError | CancelledError)


def _will_retry(info: activity.Info, exc: BaseException) -> bool:
    if isinstance(exc, ApplicationError) and exc.non_retryable:
        return False
    maximum = info.retry_policy.maximum_attempts if info.retry_policy else 0
    return maximum == 0 or info.attempt < maximum


class _ActivityLifecycle(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type in _QUIET_ACTIVITIES or not info.workflow_id:
            return await super().execute_activity(input)
        meta: dict[str, Any] = {
            "kind": "local_activity" if info.is_local else "activity",
            "activity_id": info.activity_id,
            "attempt": info.attempt,
            "workflow_type": info.workflow_type,
            "run_id": info.workflow_run_id,
        }
        _emit("activity_started", info, meta)
        started = time.monotonic()
        try:
            result = await super().execute_activity(input)
        except BaseException as exc:
            meta.update(duration_ms=int((time.monotonic() - started) * 1000))
            if _is_cancellation(exc):
                _emit("activity_cancelled", info, meta)
            else:
                name = "activity_retrying" if _will_retry(info, exc) else "activity_failed"
                meta.update(error_type=dotted_name(type(exc)), error=str(exc)[:500])
                _emit(name, info, meta)
            raise
        meta.update(duration_ms=int((time.monotonic() - started) * 1000))
        _emit("activity_completed", info, meta)
        return result


def _emit(name: str, info: activity.Info, meta: dict[str, Any]) -> None:
    from apps.tasks import records
    from apps.workflows.records import temporal_event

    event = temporal_event(name, job_id=info.workflow_id or "", queue=info.task_queue, actor=info.activity_type,
                           meta=dict(meta))  # fmt: skip
    records.record_event(event)  # buffered: the flusher thread publishes it within record_flush_interval_ms


class _WorkflowLifecycle(WorkflowInboundInterceptor):
    """Reports the workflow's start and outcome through the recording local activity.

    Deterministic: the calls are part of the workflow's history, replayed (not repeated) after a
    worker restart. A continued-as-new run does not report a second start.
    """

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        started_at = workflow.now().isoformat()
        base = {
            "job_id": info.workflow_id,
            "run_id": info.run_id,
            "workflow_type": info.workflow_type,
            "task_queue": info.task_queue,
            "attempt": info.attempt,
            "enqueued_at": info.start_time.isoformat(),
        }
        first_run = info.continued_run_id is None
        if first_run:
            await _record(WorkflowEvent("started", at=started_at, args=list(input.args), **base))
        started = started_at if first_run else None
        try:
            result = await super().execute_workflow(input)
        except (asyncio.CancelledError, Exception) as exc:
            at = workflow.now().isoformat()
            reason = workflow.cancellation_reason()
            if is_cancelled_exception(exc) and reason is not None:
                # The reason says who and why (``control.cancel`` sends "cancelled by X: why").
                event = WorkflowEvent("cancelled", at=at, started_at=started, error_message=reason or "cancelled",
                                      **base)  # fmt: skip
                await _record(event)
            elif isinstance(exc, FailureError | asyncio.TimeoutError):
                root = _root_cause(exc)
                message = str(exc) if root is exc else f"{exc}: {root}"
                event = WorkflowEvent("failed", at=at, started_at=started, error_type=error_type(root),
                                      error_message=message, **base)  # fmt: skip
                await _record(event)
            # Anything else fails the workflow task, not the workflow (the server retries it); an
            # asyncio cancellation without a cancel request is the worker evicting it from its cache.
            raise
        await _record(
            WorkflowEvent("completed", at=workflow.now().isoformat(), started_at=started, result=result, **base)
        )
        return result


def _root_cause(exc: BaseException) -> BaseException:
    cause: BaseException = exc
    while isinstance(cause, FailureError) and cause.cause is not None:
        cause = cause.cause
    return cause


async def _record(event: WorkflowEvent) -> None:
    try:
        await workflow.execute_local_activity(
            RECORD_ACTIVITY, event, start_to_close_timeout=timedelta(seconds=30), retry_policy=_RECORD_RETRY
        )
    except ActivityError:
        # The job record lags (reconciled on describe); the workflow itself must not fail for it.
        workflow.logger.warning("Could not record %s of workflow %s", event.event, event.job_id, exc_info=True)


class LifecycleInterceptor(Interceptor):
    """Add to a worker's ``interceptors`` (``manage.py runtemporal`` does)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLifecycle(super().intercept_activity(next))

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _WorkflowLifecycle
