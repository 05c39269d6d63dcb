"""A job's state change (``Transition``), built from a message, and the few facts every writer shares:
the attempt number, the time, this process's ``host:pid`` label."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from apps.tasks.status import JobStatus

SOURCE = "dramatiq"
#: ``error_type`` of a record whose message the broker refused (the enqueue helper's EnqueueError).
ENQUEUE_ERROR_TYPE = "apps.tasks.enqueue.EnqueueError"

#: Kept from an earlier transition (or the stored row) when a later one does not know them.
KEEP_IF_EMPTY = ("error_type", "error_message", "traceback", "result_payload")
KEEP_IF_NULL = ("started_at", "result")


def now() -> datetime:
    return datetime.now(timezone.utc)


def from_millis(millis: int | float) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


_worker_label: tuple[int, str] = (0, "")


def worker_label() -> str:
    """``host:pid`` of this process (a forked child gets its own)."""
    global _worker_label
    if _worker_label[0] != os.getpid():
        _worker_label = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}")
    return _worker_label[1]


def attempt_number(options: Mapping[str, Any]) -> int:
    """1 for a message's first delivery, from its options (or an in-flight entry holding the same
    names): counts dramatiq's retries and the attempts made before a dead letter was requeued."""
    return options.get("prior_attempts", 0) + options.get("retries", 0) + 1


@dataclass(slots=True)
class Transition:
    """One state change of one job, with everything needed to insert its record if missing.

    ``delay_ms``, ``event`` and ``meta`` are not stored: they shape the lifecycle event derived
    from the transition (see ``records.events``).
    """

    message_id: str
    actor_name: str
    queue_name: str
    status: str
    enqueued_at: datetime
    args: Any = ()
    kwargs: Any = field(default_factory=dict)
    attempts: int = 0
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    result: Any = None
    #: The exact return value, sealed (records.payload), when ``result`` (the display copy) is not exact.
    result_payload: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    worker: str = ""
    next_retry_at: datetime | None = None
    updated_at: datetime = field(default_factory=now)
    #: Which system runs the job ("dramatiq" or another registered backend); set when the record is inserted.
    backend: str = SOURCE
    #: A pending job's delay, or the wait before a retry (ms).
    delay_ms: int | None = None
    #: The event's name when it is not the status's usual one (``records.events.STATUS_EVENTS``).
    event: str | None = None
    #: Extra event fields (a workflow's run id, say).
    meta: dict[str, Any] | None = None

    def merged_after(self, earlier: Transition) -> Transition:
        """This transition, keeping what ``earlier`` knew and this one does not (the newer one wins)."""
        if earlier.updated_at > self.updated_at:
            return earlier.merged_after(self)
        for name in KEEP_IF_EMPTY:
            if not getattr(self, name):
                setattr(self, name, getattr(earlier, name))
        for name in KEEP_IF_NULL:
            if getattr(self, name) is None:
                setattr(self, name, getattr(earlier, name))
        return self


def transition_for(message: Any, status: str, **values: Any) -> Transition:
    """A transition of a dramatiq ``Message`` (or anything with its fields)."""
    return Transition(
        message_id=message.message_id,
        actor_name=message.actor_name,
        queue_name=message.queue_name,
        status=status,
        enqueued_at=from_millis(message.message_timestamp),
        args=message.args,
        kwargs=message.kwargs,
        **values,
    )


def pending(message: Any, *, error: str = "", delay: int | None = None) -> Transition:
    """A message just sent (or refused by the broker, with ``error``): ``pending``, attempts so far."""
    return transition_for(
        message,
        JobStatus.PENDING,
        attempts=attempt_number(message.options) - 1,
        error_type=ENQUEUE_ERROR_TYPE if error else "",
        error_message=error,
        delay_ms=delay,
    )


def retrying(transition: Transition, delay_ms: int) -> Transition:
    """``transition`` (a failed attempt) as a retry due in ``delay_ms``."""
    transition.status = JobStatus.RETRYING
    transition.delay_ms = delay_ms
    transition.next_retry_at = (transition.finished_at or now()) + timedelta(milliseconds=delay_ms)
    return transition
