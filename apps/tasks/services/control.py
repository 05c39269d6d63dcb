"""Operator control of jobs: cancel a waiting job (the admin, the API and ``manage.py tasks``).

A cancelled job never runs. A ready message is taken off its queue at once; a delayed one (a
``run_after``, a retry's wait) that a worker holds until due is noted and dropped when it comes
due. A message a worker has already fetched may be running: it is not cancelled (refused, so the
operator knows). The record ends ``cancelled`` saying who did it and why.
"""

from __future__ import annotations

import logging

import dramatiq

from apps.tasks import records
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)

CANCELLED_EVENT = "cancelled"
_WAITING = (JobStatus.PENDING, JobStatus.RETRYING)


class CannotCancel(Exception):
    """The job is not waiting (running, finished, a workflow) or a worker already holds it."""


def cancel_job(job_id: str, *, by: str, reason: str = "") -> str:
    """Cancel a pending or delayed job; returns how (``removed``, ``noted`` or ``absent``: its
    message was already gone from Redis). CannotCancel says why not; JobRecord.DoesNotExist."""
    from apps.tasks.models import JobBackend, JobRecord  # services load before the app registry

    record = JobRecord.objects.get(message_id=job_id)
    if record.backend != JobBackend.DRAMATIQ:
        raise CannotCancel(f"job {job_id} is a {record.backend} workflow: cancel it with `manage.py workflows cancel`")
    if record.status not in _WAITING:
        raise CannotCancel(f"job {job_id} is {record.status}; only pending or delayed (retrying) jobs can be cancelled")
    outcome = dramatiq.get_broker().cancel(record.queue_name, f"{job_id}.{record.attempts + 1}")
    if outcome == "held":
        raise CannotCancel(f"job {job_id} was already taken by a worker and may be running")
    text = f"cancelled by {by}" + (f": {reason}" if reason else "")
    records.record(
        records.Transition(
            message_id=record.message_id,
            actor_name=record.actor_name,
            queue_name=record.queue_name,
            status=JobStatus.CANCELLED,
            enqueued_at=record.enqueued_at,
            attempts=record.attempts,
            error_message=text,
            finished_at=records.now(),
            event=CANCELLED_EVENT,
            meta={"by": by, "reason": reason},
        ),
        wait=True,
    )
    logger.info("Job %s (%s) %s.", job_id, record.actor_name, text)
    return outcome


def cancel_jobs(job_ids: list[str], *, by: str, reason: str = "") -> tuple[list[str], dict[str, str]]:
    """Cancel several jobs; the ids cancelled and, per refused id, why."""
    from apps.tasks.models import JobRecord

    cancelled, refused = [], {}
    for job_id in job_ids:
        try:
            cancel_job(job_id, by=by, reason=reason)
            cancelled.append(job_id)
        except (CannotCancel, JobRecord.DoesNotExist) as exc:
            refused[job_id] = str(exc) if isinstance(exc, CannotCancel) else f"no job {job_id!r}"
    return cancelled, refused
