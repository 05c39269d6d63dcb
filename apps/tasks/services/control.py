"""Operator control (the admin, the API and ``manage.py tasks``): cancel a waiting job; abort a
running one; pause and resume a queue.

A paused queue's consumers fetch nothing, in every worker, until it is resumed; what workers
already hold (running or prefetched) finishes, and enqueue goes on, so nothing is lost.

A cancelled job never runs. A ready message is taken off its queue at once; a delayed one (a
``run_after``, a retry's wait) that a worker holds until due is noted and dropped when it comes
due. A message a worker has already fetched may be running: it is not cancelled (refused, so the
operator knows). The record ends ``cancelled`` saying who did it and why.

An aborted job is interrupted in its worker (``middleware.abort``, dramatiq-abort) and ends
``cancelled`` too, its error text saying "aborted by ..."; it is not retried.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import dramatiq
from dramatiq_abort import Abortable, abort

from apps.tasks import keys, records
from apps.tasks.broker import get_redis, waiting_redis_id
from apps.tasks.config import check_queue
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)

CANCELLED_EVENT = "cancelled"
#: How long an abort request waits for its job to be picked up by a worker's abort watcher.
ABORT_REQUEST_TTL_SECONDS = 90
_WAITING = (JobStatus.PENDING, JobStatus.RETRYING)


class CannotCancel(Exception):
    """The job is not waiting (running, finished, a workflow) or a worker already holds it."""


def cancel_message(by: str, reason: str = "") -> str:
    """What a cancelled job's record says (the Temporal layer's cancelled workflows say the same)."""
    return f"cancelled by {by}" + (f": {reason}" if reason else "")


def cancel_job(job_id: str, *, by: str, reason: str = "") -> str:
    """Cancel a pending or delayed job; returns how (``removed``, ``noted`` or ``absent``: its
    message was already gone from Redis). CannotCancel says why not; JobRecord.DoesNotExist."""
    from apps.tasks.models import JobBackend, JobRecord  # services load before the app registry

    record = JobRecord.objects.get(message_id=job_id)
    if record.backend != JobBackend.DRAMATIQ:
        raise CannotCancel(f"job {job_id} is a {record.backend} workflow: cancel it with `manage.py workflows cancel`")
    if record.status not in _WAITING:
        raise CannotCancel(f"job {job_id} is {record.status}; only pending or delayed (retrying) jobs can be cancelled")
    outcome = dramatiq.get_broker().cancel(record.queue_name, waiting_redis_id(record))
    if outcome == "held":
        raise CannotCancel(f"job {job_id} was already taken by a worker and may be running")
    text = cancel_message(by, reason)
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
    return _each(job_ids, cancel_job, by=by, reason=reason)


def abort_jobs(
    job_ids: list[str], *, by: str, reason: str = "", grace_seconds: float = 0
) -> tuple[list[str], dict[str, str]]:
    """Ask for several running jobs to be aborted; the ids asked for and, per refused id, why."""
    return _each(job_ids, abort_job, by=by, reason=reason, grace_seconds=grace_seconds)


def _each(job_ids: list[str], operation, **options: Any) -> tuple[list[str], dict[str, str]]:
    from apps.tasks.models import JobRecord

    done, refused = [], {}
    for job_id in job_ids:
        try:
            operation(job_id, **options)
            done.append(job_id)
        except (CannotCancel, JobRecord.DoesNotExist) as exc:
            refused[job_id] = str(exc) if isinstance(exc, CannotCancel) else f"no job {job_id!r}"
    return done, refused


def abort_job(job_id: str, *, by: str, reason: str = "", grace_seconds: float = 0) -> None:
    """Ask the worker running a job to interrupt it, after ``grace_seconds`` in which the job may
    stop itself (``dramatiq_abort.abort_requested()``). The record ends ``cancelled`` ("aborted by
    ...") when the worker has done it. CannotCancel says why not; JobRecord.DoesNotExist."""
    from apps.tasks.models import JobBackend, JobRecord

    record = JobRecord.objects.get(message_id=job_id)
    if record.backend != JobBackend.DRAMATIQ:
        raise CannotCancel(f"job {job_id} is a {record.backend} workflow: cancel it with `manage.py workflows cancel`")
    if record.status != JobStatus.RUNNING:
        hint = "; cancel it instead" if record.status in _WAITING else ""
        raise CannotCancel(f"job {job_id} is {record.status}; only running jobs can be aborted{hint}")
    broker = dramatiq.get_broker()
    middleware = next((m for m in broker.middleware if isinstance(m, Abortable)), None)
    if middleware is None:
        raise CannotCancel("the broker has no AbortMiddleware (apps.tasks.middleware.abort): jobs cannot be aborted")
    note = json.dumps({"by": by, "reason": reason})
    get_redis().set(keys.abort_note(broker.namespace, job_id), note, ex=ABORT_REQUEST_TTL_SECONDS + 24 * 3600)
    abort(job_id, middleware, abort_ttl=ABORT_REQUEST_TTL_SECONDS * 1000, abort_timeout=int(grace_seconds * 1000))
    logger.info("Job %s (%s): abort requested by %s.", job_id, record.actor_name, by)


def abort_text(job_id: str) -> tuple[str, dict[str, Any]]:
    """The record's error text and event fields for an aborted job: who asked and why."""
    try:
        note = json.loads(get_redis().get(keys.abort_note(dramatiq.get_broker().namespace, job_id)) or "{}")
    except Exception:  # Redis gone: the job is still over, say so without the name
        logger.warning("Job %s: could not read who aborted it.", job_id, exc_info=True)
        note = {}
    by, reason = note.get("by"), note.get("reason")
    text = "aborted" + (f" by {by}" if by else "") + (f": {reason}" if reason else "")
    return text, {"by": by or "", "reason": reason or ""}


def pause_queue(queue_name: str, *, by: str) -> str:
    """Stop every consumer of a configured queue fetching (UnknownQueueError); its name."""
    queue = check_queue(queue_name)
    dramatiq.get_broker().pause(queue, json.dumps({"by": by, "at": time.time()}))
    logger.warning("Queue %s paused by %s.", queue, by)
    return queue


def resume_queue(queue_name: str, *, by: str) -> bool:
    """Let a paused queue's consumers fetch again; False when it was not paused."""
    queue = check_queue(queue_name)
    resumed = dramatiq.get_broker().resume(queue)
    if resumed:
        logger.warning("Queue %s resumed by %s.", queue, by)
    return resumed


def paused_queues() -> dict[str, dict[str, Any]]:
    """Paused queue → who paused it and when (epoch seconds)."""
    from apps.tasks.config import configured_queues

    queues = configured_queues()
    namespace = dramatiq.get_broker().namespace
    values = get_redis().mget([keys.paused(namespace, queue) for queue in queues])
    return {queue: json.loads(value) for queue, value in zip(queues, values, strict=True) if value}
