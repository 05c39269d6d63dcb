"""Job records and lifecycle events of Temporal jobs, in the same table and stream as dramatiq's.

A Temporal job's id is its workflow id. The router writes the pending record before it starts the
workflow; the worker's lifecycle interceptor reports started / completed / failed / cancelled
(``apply_workflow_event``); ``reconcile`` catches what no workflow code sees (terminate, timeouts).
A cancelled workflow's record is ``cancelled``, its error message the cancel request's reason ("cancelled
by X: why"); error types are dotted paths. Events carry ``source: "temporal"``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from temporalio import activity

from apps.tasks import records
from apps.tasks.config import get_task_config
from apps.tasks.models import TERMINAL_STATUSES, JobBackend, JobRecord, JobStatus
from apps.tasks.records import Transition, event_fields, now, worker_label
from apps.tasks.records.payload import seal
from apps.tasks.records.serialization import stored_result
from apps.workflows.lifecycle import RECORD_ACTIVITY, WorkflowEvent

logger = logging.getLogger(__name__)

SOURCE = JobBackend.TEMPORAL.value
CANCELLED_ERROR = "temporalio.exceptions.CancelledError"


def temporal_event(
    event: str, *, job_id: str, queue: str, actor: str, meta: dict[str, Any] | None = None, at: datetime | None = None
) -> dict[str, str]:
    """An event that is no state change of the job (activity progress), in the stream's schema, from Temporal."""
    return event_fields(event, job_id=job_id, queue=queue, actor=actor, meta=meta, at=at, source=SOURCE)


def publish(events: list[dict[str, str]]) -> None:
    """Publish now; if Redis refuses, the process's recorder keeps them and retries."""
    for item in events:
        records.record_event(item, wait=True)


def pending_transition(
    job_id: str, actor: str, queue: str, args: Any = (), kwargs: Any = None, error: str = "", meta: dict | None = None
) -> Transition:
    return Transition(
        message_id=job_id,
        actor_name=actor,
        queue_name=queue,
        status=JobStatus.PENDING,
        enqueued_at=now(),
        args=args,
        kwargs=kwargs or {},
        error_type=records.ENQUEUE_ERROR_TYPE if error else "",
        error_message=error,
        backend=SOURCE,
        meta=meta,
    )


_STATUSES = {
    "started": JobStatus.RUNNING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}


def apply_workflow_event(event: WorkflowEvent) -> None:
    """Write the job record's transition (synchronously: once a workflow's result is out, so is its
    record) and publish the event."""
    at = datetime.fromisoformat(event.at)
    transition = Transition(
        message_id=event.job_id,
        actor_name=event.workflow_type,
        queue_name=event.task_queue,
        status=_STATUSES[event.event],
        enqueued_at=datetime.fromisoformat(event.enqueued_at),
        args=event.args,
        attempts=event.attempt,
        worker=worker_label(),
        backend=SOURCE,
        meta={"kind": "workflow", "run_id": event.run_id},
    )
    if event.event == "started":
        transition.started_at = at
    else:
        transition.finished_at = at
        started_at = datetime.fromisoformat(event.started_at) if event.started_at else _stored_start(event.job_id)
        if started_at is not None:
            transition.duration_ms = max(0, int((at - started_at).total_seconds() * 1000))
        if event.event == "completed":
            config = get_task_config()
            transition.result, exact = stored_result(event.result, config.record_args_max_bytes, config.secret_arg_keys)
            if exact is not None:
                transition.result_payload = seal(exact)
        else:
            transition.error_type = CANCELLED_ERROR if event.event == "cancelled" else event.error_type
            transition.error_message = event.error_message or event.event
            transition.event = event.event if event.event == "cancelled" else None
    # Synchronously: once a workflow's result is out, so is its record. This process's buffered
    # activity events are published first, so the stream stays in order. A final record is counted
    # on the dashboard once, though a retried record activity may write it again.
    if event.event == "started":
        records.record(transition, wait=True)
    else:
        records.record_final(transition)


@activity.defn(name=RECORD_ACTIVITY)
def record_workflow_event(event: WorkflowEvent) -> None:
    """Write the job record and publish the event (run as a local activity by the interceptor)."""
    apply_workflow_event(event)


def _stored_start(job_id: str) -> datetime | None:
    return JobRecord.objects.filter(message_id=job_id).values_list("started_at", flat=True).first()


#: How a closed workflow's status reads in a job record, when no workflow code reported it.
_CLOSED = {
    "COMPLETED": (JobStatus.COMPLETED, ""),
    "FAILED": (JobStatus.FAILED, "temporal.WorkflowFailed"),
    "CANCELED": (JobStatus.CANCELLED, CANCELLED_ERROR),
    "TERMINATED": (JobStatus.FAILED, "temporal.WorkflowTerminated"),
    "TIMED_OUT": (JobStatus.FAILED, "temporal.WorkflowTimedOut"),
    "CONTINUED_AS_NEW": None,  # a later run carries on
}


def reconcile(job_id: str, status: str, close_time: datetime | None, workflow_type: str, task_queue: str) -> bool:
    """Bring a record whose workflow closed unseen (terminated, timed out) to that outcome.

    ``status`` is the Temporal status name. Returns True when the record changed.
    """
    mapped = _CLOSED.get(status)
    if mapped is None:
        return False
    record = JobRecord.objects.filter(message_id=job_id).only("status", "started_at", "enqueued_at").first()
    if record is not None and record.status in TERMINAL_STATUSES:
        return False
    job_status, error_type = mapped
    finished = close_time or now()
    started = record.started_at if record is not None else None
    records.record_final(  # counted once, though the worker may report the same end meanwhile
        Transition(
            message_id=job_id,
            actor_name=workflow_type,
            queue_name=task_queue,
            status=job_status,
            enqueued_at=record.enqueued_at if record is not None else finished,
            finished_at=finished,
            duration_ms=max(0, int((finished - started).total_seconds() * 1000)) if started else None,
            error_type=error_type,
            error_message=f"workflow {status.lower()}" if error_type else "",
            backend=SOURCE,
        )
    )
    return True
