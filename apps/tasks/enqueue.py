"""Send a job with its record written first."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import dramatiq
from django.db import transaction
from dramatiq.errors import ActorNotFound

from apps.tasks.broker import RedisBroker
from apps.tasks.middleware.lifecycle import attempt_number, recorded_by_caller
from apps.tasks.services.recorder import (
    Transition,
    event_fields,
    from_millis,
    get_recorder,
    insert_new_record,
    publish_events,
    write_transitions,
)
from apps.tasks.status import JobStatus

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
        from apps.tasks.discovery import import_task_modules

        import_task_modules()
        return broker.get_actor(actor)


def pending_transition(message: dramatiq.Message, error: str = "") -> Transition:
    return Transition(
        message_id=message.message_id,
        actor_name=message.actor_name,
        queue_name=message.queue_name,
        status=JobStatus.PENDING,
        enqueued_at=from_millis(message.message_timestamp),
        args=message.args,
        kwargs=message.kwargs,
        attempts=attempt_number(message) - 1,
        error_type="apps.tasks.enqueue.EnqueueError" if error else "",
        error_message=error,
    )


def send_recorded(
    message: dramatiq.Message, delay: int | None = None, using: str = "default", *, record_written: bool = True
) -> None:
    """Publish the ``enqueued`` event and hand ``message`` to the broker. Its record exists already,
    or, with ``record_written=False``, its pending record is handed to the recorder once sent."""
    broker = dramatiq.get_broker()
    token = recorded_by_caller.set(message.message_id)
    try:
        event = event_fields(
            "enqueued", job_id=message.message_id, queue=message.queue_name, actor=message.actor_name,
            meta={"delay_ms": delay},
        )  # fmt: skip
        if isinstance(broker, RedisBroker):
            broker.enqueue(message, delay=delay, event=event)  # event and message in one round-trip
        else:
            publish_events([event])
            broker.enqueue(message, delay=delay)
    except Exception as exc:
        reason = f"enqueue failed: {type(exc).__name__}: {exc}"
        logger.error("Job %s (%s) stays pending: %s", message.message_id, message.actor_name, reason)
        write_transitions([pending_transition(message, reason)], using=using)
        raise EnqueueError(reason) from exc
    finally:
        recorded_by_caller.reset(token)
    if not record_written:
        get_recorder().record(pending_transition(message))


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
        from apps.tasks.services.dead_letters import check_queue

        message = message.copy(queue_name=check_queue(queue_name))
    if record_first:
        insert_new_record(pending_transition(message), using=using)
    send = partial(send_recorded, message, delay, using, record_written=record_first)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(send, using=using, robust=True)
    else:
        send()
    return message.message_id
