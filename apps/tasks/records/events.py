"""Lifecycle events: the stream's schema, and the events a transition implies.

One schema serves every backend: flat string fields ``id, source, event, job_id, queue, actor,
meta (JSON), timestamp``. Writers never build events beside their transitions: ``events_for``
derives them, so a record and its events cannot disagree.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from datetime import datetime
from typing import Any

from apps.tasks.status import JobStatus

from .transitions import SOURCE, Transition, now

#: The event a transition to each status publishes (a failed attempt first publishes ``failed``).
STATUS_EVENTS = {
    JobStatus.PENDING: "enqueued",
    JobStatus.RUNNING: "started",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.RETRYING: "retrying",
    JobStatus.DEAD_LETTER: "dead_letter",
    JobStatus.SKIPPED: "skipped",
    JobStatus.CANCELLED: "cancelled",
}
#: Error text carried in an event's meta is cut to this many characters (the record keeps it whole).
EVENT_ERROR_CHARS = 500

_event_ids: tuple[int, str, itertools.count] = (0, "", itertools.count(1))


def next_event_id() -> str:
    """Unique across processes: a random per-process prefix and a counter (cheaper than uuid4)."""
    global _event_ids
    pid, prefix, counter = _event_ids
    if pid != os.getpid():  # a forked child must not repeat its parent's ids
        pid, prefix, counter = _event_ids = (os.getpid(), uuid.uuid4().hex[:16], itertools.count(1))
    return f"{prefix}-{next(counter):x}"


def event_fields(
    event: str,
    *,
    job_id: str,
    queue: str,
    actor: str,
    meta: dict[str, Any] | None = None,
    at: datetime | None = None,
    source: str = SOURCE,
) -> dict[str, str]:
    """An event in the stream's schema; ``source`` says which system ran the job. For events that
    are no state change (a workflow activity's progress); a transition's come from ``events_for``."""
    if meta and len(meta) == 1 and type(meta.get("attempt")) is int:
        meta_json = f'{{"attempt":{meta["attempt"]}}}'  # the common case, without json.dumps
    else:
        meta_json = json.dumps(meta or {}, default=str, separators=(",", ":"))
    return {
        "id": next_event_id(),
        "source": source,
        "event": event,
        "job_id": job_id,
        "queue": queue,
        "actor": actor,
        "meta": meta_json,
        "timestamp": (at or now()).isoformat(),
    }


def events_for(transition: Transition) -> list[dict[str, str]]:
    """The events ``transition`` publishes, in order."""
    status = transition.status
    name = transition.event or STATUS_EVENTS[status]
    meta: dict[str, Any]
    if status == JobStatus.PENDING:
        meta = {"delay_ms": transition.delay_ms}
        at = transition.updated_at
    elif status == JobStatus.SKIPPED:
        meta = {"reason": transition.error_message} if transition.error_message else {}
        at = transition.finished_at
    else:
        meta = {"attempt": transition.attempts}
        at = transition.started_at if status == JobStatus.RUNNING else transition.finished_at
    if transition.error_type and status in (JobStatus.FAILED, JobStatus.RETRYING, JobStatus.DEAD_LETTER):
        meta["error_type"] = transition.error_type
        meta["error"] = transition.error_message[:EVENT_ERROR_CHARS]
    if transition.meta:
        meta.update(transition.meta)
    fields = dict(job_id=transition.message_id, queue=transition.queue_name, actor=transition.actor_name)
    source = transition.backend
    events = []
    if status in (JobStatus.RETRYING, JobStatus.DEAD_LETTER) and transition.event is None:
        events.append(event_fields("failed", meta=dict(meta), at=at, source=source, **fields))
    if status == JobStatus.RETRYING:
        meta["delay_ms"] = transition.delay_ms
        if transition.next_retry_at is not None:
            meta["next_retry_at"] = transition.next_retry_at.isoformat()
    events.append(event_fields(name, meta=meta, at=at, source=source, **fields))
    return events
