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
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)


#: A unique key is held at most this long (seconds): a holder lost without trace frees it then.
UNIQUE_TTL_SECONDS = 24 * 3600
#: A holder with no record after this long was never committed (its transaction rolled back).
UNIQUE_UNRECORDED_GRACE_SECONDS = 60


class DuplicateJob(RuntimeError):
    """``enqueue(..., unique_key=K, on_duplicate="refuse")`` while job ``job_id`` holds K."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


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
    unique_key: str | None = None,
    on_duplicate: str = "join",
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

    ``unique_key`` (or the actor's ``@task(unique_key=...)``, called with the job's arguments): while a
    job holding that key waits or runs, a second one is not sent. ``on_duplicate="join"`` (default)
    returns the holder's id and records the second job ``skipped``, saying which job it joined;
    ``"refuse"`` raises DuplicateJob. The key is free again once its job has finished.
    """
    actor = resolve_actor(actor)
    if on_duplicate not in ("join", "refuse"):
        raise ValueError(f"on_duplicate must be 'join' or 'refuse', not {on_duplicate!r}")
    unique_key = unique_key or _actor_unique_key(actor, args, kwargs or {})
    if unique_key:
        options["unique_key"] = unique_key
    message = actor.message_with_options(args=tuple(args), kwargs=kwargs or {}, **options)
    if queue_name is not None and queue_name != message.queue_name:
        message = message.copy(queue_name=check_queue(queue_name))
    if unique_key:
        holder = _claim_unique(message, unique_key)
        if holder is not None:
            return _duplicate(message, unique_key, holder, on_duplicate, using)
    pending = records.pending(message, delay=delay)
    if record_first:
        records.record(pending, wait=True, new=True, publish=False, using=using)
    send = partial(send_recorded, message, delay, using, record_written=record_first, pending=pending)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(send, using=using, robust=True)
    else:
        send()
    return message.message_id


def _actor_unique_key(actor: dramatiq.Actor, args: tuple | list, kwargs: dict[str, Any]) -> str | None:
    make_key = actor.options.get("unique_key")
    if make_key is None:
        return None
    key = make_key(*args, **kwargs) if callable(make_key) else str(make_key)
    return f"{actor.actor_name}:{key}" if key else None


def _claim_unique(message: dramatiq.Message, unique_key: str) -> str | None:
    """Claim the key for this job: None when it is ours, else the id of the job that holds it."""
    broker = dramatiq.get_broker()
    if not isinstance(broker, RedisBroker):
        return None
    holder = broker.claim_unique(unique_key, message.message_id, UNIQUE_TTL_SECONDS)
    if holder is not None and _holder_finished(broker, unique_key, holder):
        holder = broker.claim_unique(unique_key, message.message_id, UNIQUE_TTL_SECONDS, finished_holder=holder)
    return holder


def _holder_finished(broker: RedisBroker, unique_key: str, holder: str) -> bool:
    from apps.tasks.keys import unique
    from apps.tasks.status import TERMINAL_STATUSES

    status = records.recorded_status(holder)
    if status is not None:
        return status in TERMINAL_STATUSES
    held_for = UNIQUE_TTL_SECONDS - broker.client.ttl(unique(broker.namespace, unique_key))
    return held_for > UNIQUE_UNRECORDED_GRACE_SECONDS  # never recorded: its transaction rolled back


def _duplicate(message: dramatiq.Message, unique_key: str, holder: str, on_duplicate: str, using: str) -> str:
    text = f"job {holder} with unique key {unique_key!r} is waiting or running"
    if on_duplicate == "refuse":
        raise DuplicateJob(text, holder)
    skipped = records.transition_for(
        message, JobStatus.SKIPPED, error_message=f"joined job {holder}: {text}", finished_at=records.now()
    )
    records.record(skipped, wait=True, using=using)
    logger.info(
        "Job %s (%s) joined job %s (unique key %r).", message.message_id, message.actor_name, holder, unique_key
    )
    return holder
