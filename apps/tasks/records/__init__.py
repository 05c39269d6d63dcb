"""Job records: the one owner of "a job changed state".

Every writer (the enqueue helper, the lifecycle middleware, recovery, queue purges, the workflows
layer) builds a ``Transition`` and hands it to ``record``, which writes the job record (now, or
through the process's batching buffer), publishes the events derived from the transition once the
record is committed, and runs what waited for that commit. The newer transition of a job always
wins, whichever process writes it. This package sits below the broker and the middleware and
imports neither: the broker hands in its after-commit callbacks (acks) and is the event sink.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from django.db import transaction

from apps.tasks.status import TERMINAL_STATUSES

from .buffer import count_finished, get_recorder, publish_events, wait_until_flushed
from .events import event_fields, events_for
from .sinks import EventSink, set_event_sink
from .sql import insert_new, locked_status, recorded_status, write_transitions
from .transitions import (
    ENQUEUE_ERROR_TYPE,
    SOURCE,
    Transition,
    attempt_number,
    from_millis,
    now,
    pending,
    retrying,
    transition_for,
    worker_label,
)

__all__ = [
    "ENQUEUE_ERROR_TYPE",
    "SOURCE",
    "EventSink",
    "Transition",
    "attempt_number",
    "count_finished",
    "event_fields",
    "events_for",
    "flush",
    "from_millis",
    "get_recorder",
    "insert_new",
    "now",
    "pending",
    "record",
    "record_event",
    "record_final",
    "recorded_by_caller",
    "recorded_status",
    "retrying",
    "sending_recorded",
    "set_event_sink",
    "settle_after_commit",
    "stop",
    "transition_for",
    "wait_until_flushed",
    "worker_label",
    "write_transitions",
]

logger = logging.getLogger(__name__)


def record(
    transition: Transition,
    *,
    wait: bool = False,
    new: bool = False,
    publish: bool = True,
    using: str = "default",
) -> list[dict[str, str]]:
    """Record ``transition`` and publish its events; returns the events.

    - ``wait=False``: through the process's buffer (the worker's hot path); written within
      ``record_flush_interval_ms``.
    - ``wait=True``: written now, in the caller's transaction if one is open; the events follow
      the commit. ``new=True`` for a job whose record cannot exist yet (a cheaper insert).
    - ``publish=False``: the caller sends the events itself (the enqueue helper sends the
      ``enqueued`` event with the message, in one Redis call).
    """
    events = events_for(transition) if publish else []
    if not wait:
        get_recorder().add(transition, events)
        return events
    if new:
        insert_new(transition, using=using)
    else:
        write_transitions([transition], using=using)
    if events:
        transaction.on_commit(partial(_publish_or_buffer, events), using=using)
    return events


def record_final(transition: Transition, *, using: str = "default") -> bool:
    """Record a job's final transition now (``record(wait=True)``) and count it in the dashboard's
    per-minute counters once the record commits; True when it was counted.

    For writers outside the buffer (the buffer counts what it flushes) whose final record may be
    written more than once (a retried record activity, a reconcile racing the worker): it counts
    only the write that made the record final. The row lock orders two such writers of one job.
    """
    with transaction.atomic(using=using):
        before = locked_status(transition.message_id, using=using)
        record(transition, wait=True, using=using)
        # The upsert keeps a newer stored transition: count only if this one is what the record says now.
        counted = before not in TERMINAL_STATUSES and locked_status(transition.message_id, using=using) == (
            transition.status
        )
        if counted:
            transaction.on_commit(partial(count_finished, [transition]), using=using)
    return counted


def record_event(event: dict[str, str], *, wait: bool = False) -> None:
    """Publish an event that is no state change (a workflow's progress); buffered unless ``wait``."""
    if wait:
        _publish_or_buffer([event])
    else:
        get_recorder().add(None, [event])


def settle_after_commit(callback: Callable[..., Any], key: tuple, item: Any) -> None:
    """Run ``callback(*key, items)`` once the records buffered so far are committed; items with
    the same callback and key go in one call (the broker acks a batch of messages at once)."""
    get_recorder().after_commit(callback, key, item)


def flush() -> bool:
    """Write this process's buffer now (worker shutdown hooks); True when it was written."""
    return get_recorder().flush()


def stop() -> None:
    """Flush and stop this process's flusher thread."""
    get_recorder().stop()


def _publish_or_buffer(events: list[dict[str, str]]) -> None:
    """Publish now; if the sink refuses, the buffer keeps them and retries. Buffered events of this
    process go first, so the stream stays in order."""
    recorder = get_recorder()
    if recorder.pending():
        recorder.flush()
    try:
        publish_events(events)
    except Exception:
        logger.warning("Could not publish %d events now; buffered for retry.", len(events), exc_info=True)
        recorder.add(None, events)


_recorded_by_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("recorded_by_caller", default=None)


@contextmanager
def sending_recorded(message_id: str) -> Iterator[None]:
    """While the enqueue helper sends a message whose record it wrote, the lifecycle middleware's
    ``after_enqueue`` must not record it again."""
    token = _recorded_by_caller.set(message_id)
    try:
        yield
    finally:
        _recorded_by_caller.reset(token)


def recorded_by_caller(message_id: str) -> bool:
    return _recorded_by_caller.get() == message_id
