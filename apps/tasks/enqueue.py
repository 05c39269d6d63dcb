"""Send a job with its record written first."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import dramatiq
from django.db import transaction
from dramatiq.errors import ActorNotFound

from apps.tasks import records
from apps.tasks.broker import RedisBroker
from apps.tasks.config import check_queue
from apps.tasks.discovery import import_task_modules

logger = logging.getLogger(__name__)


class EnqueueError(RuntimeError):
    """The job's record was written but the broker refused the message; the record says why."""


def resolve_actor(actor: dramatiq.Actor | str) -> dramatiq.Actor:
    """An actor, or the actor of that name; task modules are imported on first need (web process)."""
    if not isinstance(actor, str):
        return actor
    broker = dramatiq.get_broker()
    try:
        return broker.get_actor(actor)
    except ActorNotFound:
        import_task_modules()
        return broker.get_actor(actor)


def send_recorded(
    message: dramatiq.Message,
    delay: int | None = None,
    using: str = "default",
    *,
    record_written: bool = True,
    pending: records.Transition | None = None,
) -> None:
    """Hand ``message`` to the broker with its ``enqueued`` event. Its record exists already, or,
    with ``record_written=False``, its pending record (``pending``, or one built here) is handed
    to the recorder once sent."""
    broker = dramatiq.get_broker()
    if pending is None:
        pending = records.pending(message, delay=delay)
    try:
        with records.sending_recorded(message.message_id):
            if isinstance(broker, RedisBroker):
                # event and message in one round-trip
                broker.enqueue(message, delay=delay, event=records.events_for(pending)[0])
            else:
                records.record_event(records.events_for(pending)[0], wait=True)
                broker.enqueue(message, delay=delay)
    except Exception as exc:
        reason = f"enqueue failed: {type(exc).__name__}: {exc}"
        logger.error("Job %s (%s) stays pending: %s", message.message_id, message.actor_name, reason)
        records.record(records.pending(message, error=reason, delay=delay), wait=True, publish=False, using=using)
        raise EnqueueError(reason) from exc
    if not record_written:
        records.record(pending, publish=False)


def enqueue(
    actor: dramatiq.Actor | str,
    args: tuple | list = (),
    kwargs: dict[str, Any] | None = None,
    *,
    delay: int | None = None,
    queue_name: str | None = None,
    using: str = "default",
    record_first: bool = True,
    **options: Any,
) -> str:
    """Write the job's record, then send it; inside a transaction, send when it commits.

    ``delay`` is in milliseconds; ``queue_name`` sends to another configured queue than the actor's;
    ``options`` are dramatiq message options. Returns the message id, which is the record's id. Outside a
    transaction a broker failure raises EnqueueError (the record stays pending with the reason);
    after a commit it is logged and recorded the same way.

    ``record_first=False`` is for a caller whose own committed row is the outbox (a knowbase
    document saved as queued, sent again by the sweeper if the message is lost): the message goes
    without waiting for a database round-trip, and its pending record follows through the
    process's batching recorder. The event still goes with the message; a failed send is still
    recorded at once. A record lost with the process is written by the job's next transition.
    """
    actor = resolve_actor(actor)
    message = actor.message_with_options(args=tuple(args), kwargs=kwargs or {}, **options)
    if queue_name is not None and queue_name != message.queue_name:
        message = message.copy(queue_name=check_queue(queue_name))
    pending = records.pending(message, delay=delay)
    if record_first:
        records.record(pending, wait=True, new=True, publish=False, using=using)
    send = partial(send_recorded, message, delay, using, record_written=record_first, pending=pending)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(send, using=using, robust=True)
    else:
        send()
    return message.message_id
