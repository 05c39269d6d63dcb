"""Records whose message Redis no longer has: sent again from the record, or closed with the reason.

A job's record is written before its message is sent (the enqueue helper), so the record is an
outbox: when Redis restarts without persistence, a send failed, or a queue was emptied by hand,
the record still says what to send. A message's Redis id names its job and attempt
(``broker.redis_message_id``), so for a ``pending`` or ``retrying`` record the place to look is
known: the queue's messages (ready, fetched or handed over), its delay queue or its dead letters.

One worker process per heartbeat interval runs a pass (a Redis lock), over at most
``reconcile_batch`` records, oldest first from where the last pass stopped, so a long backlog is
covered in turns at a bounded cost: one query and one Redis round-trip per pass.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dramatiq
from django.utils import timezone
from dramatiq.common import dq_name
from dramatiq.errors import ActorNotFound

from apps.tasks import keys, records
from apps.tasks.broker import get_redis, waiting_redis_id
from apps.tasks.config import get_task_config
from apps.tasks.enqueue import send_recorded
from apps.tasks.errors import MessageLost
from apps.tasks.records import payload
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)

LOST_ERROR_TYPE = f"{MessageLost.__module__}.{MessageLost.__qualname__}"
RESENT_EVENT = "resent"
_WAITING = (JobStatus.PENDING, JobStatus.RETRYING)


@dataclass
class ReconcileReport:
    checked: int = 0
    resent: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)


def _candidates(namespace: str, grace_ms: int, batch: int) -> list:
    """Waiting records past the grace period, oldest first after the cursor; the cursor wraps."""
    from apps.tasks.models import JobBackend, JobRecord  # services load before the app registry

    client = get_redis()
    waiting = JobRecord.objects.filter(
        status__in=_WAITING,
        backend=JobBackend.DRAMATIQ,
        updated_at__lt=timezone.now() - timedelta(milliseconds=grace_ms),
    ).order_by("enqueued_at", "message_id")
    raw = client.get(keys.reconcile_cursor(namespace))
    page = waiting
    if raw:
        cursor = json.loads(raw)
        after = datetime.fromisoformat(cursor["enqueued_at"])
        page = waiting.filter(enqueued_at__gte=after).exclude(enqueued_at=after, message_id__lte=cursor["message_id"])
    found = list(page[:batch])
    if len(found) < batch:
        client.delete(keys.reconcile_cursor(namespace))  # the next pass starts from the oldest again
    else:
        last = found[-1]
        client.set(
            keys.reconcile_cursor(namespace),
            json.dumps({"enqueued_at": last.enqueued_at.isoformat(), "message_id": last.message_id}),
        )
    return found


def _where(namespace: str, candidates: list) -> list[str | None]:
    """For each record, where its message is: "queued", "delayed", "dead", or None (nowhere)."""
    pipeline = get_redis().pipeline(transaction=False)
    for record in candidates:
        redis_id, queue = waiting_redis_id(record), record.queue_name
        pipeline.hexists(keys.queue_messages(namespace, queue), redis_id)
        pipeline.hexists(keys.queue_messages(namespace, dq_name(queue)), redis_id)
        pipeline.hexists(keys.dead_letter_messages(namespace, queue), redis_id)
    found = pipeline.execute()
    places = []
    for index in range(len(candidates)):
        queued, delayed, dead = found[index * 3 : index * 3 + 3]
        places.append("queued" if queued else "delayed" if delayed else "dead" if dead else None)
    return places


def _message(record, args: list, kwargs: dict) -> dramatiq.Message:
    return dramatiq.Message(
        queue_name=record.queue_name,
        actor_name=record.actor_name,
        args=tuple(args),
        kwargs=kwargs,
        options={"retries": record.attempts} if record.attempts else {},
        message_id=record.message_id,
        message_timestamp=int(record.enqueued_at.timestamp() * 1000),
    )


def _resend(broker: dramatiq.Broker, record) -> str | None:
    """Send the record's message again; None when done, else why it cannot be sent."""
    if record.args_complete and (not isinstance(record.args, list) or not isinstance(record.kwargs, dict)):
        return "its record holds no arguments to send"
    try:
        args, kwargs = payload.exact_arguments(record)
    except LookupError as exc:  # masked or cut, and no readable exact copy (written before it was kept)
        return f"its arguments were masked or truncated in its record and {exc}"
    try:
        broker.get_actor(record.actor_name)
    except ActorNotFound:
        return f"no actor named {record.actor_name!r} is declared"
    message = _message(record, args, kwargs)
    delay = None
    if record.status == JobStatus.RETRYING and record.next_retry_at is not None:
        delay = max(0, int((record.next_retry_at - timezone.now()).total_seconds() * 1000))
    pending = records.pending(message, delay=delay)
    pending.event = RESENT_EVENT
    pending.meta = {"reason": "its message was in no queue of Redis"}
    records.record(pending, wait=True, publish=False)
    send_recorded(message, delay, pending=pending)
    return None


def _close(record, status: str, reason: str) -> None:
    at = records.now()
    records.record(
        records.Transition(
            message_id=record.message_id,
            actor_name=record.actor_name,
            queue_name=record.queue_name,
            status=status,
            enqueued_at=record.enqueued_at,
            attempts=record.attempts,
            error_type=LOST_ERROR_TYPE,
            error_message=reason,
            finished_at=at,
        ),
        wait=True,
    )


def reconcile(broker: dramatiq.Broker | None = None) -> ReconcileReport:
    """One pass, unconditionally (``reconcile_if_due`` is what workers call)."""
    broker = broker or dramatiq.get_broker()
    config = get_task_config().dramatiq
    report = ReconcileReport()
    candidates = _candidates(broker.namespace, config.reconcile_grace_ms, config.reconcile_batch)
    report.checked = len(candidates)
    for record, place in zip(candidates, _where(broker.namespace, candidates), strict=True):
        if place in ("queued", "delayed"):
            continue
        if place == "dead":  # dead-lettered where no middleware saw it (an unknown actor, say)
            _close(record, JobStatus.DEAD_LETTER, "its message is in the dead letters; the record had missed it")
            report.dead_lettered.append(record.message_id)
            continue
        try:
            why_not = _resend(broker, record)
        except Exception as exc:  # the send failed: the record says so, and a later pass tries again
            logger.warning("Job %s: its lost message could not be sent again: %s", record.message_id, exc)
            continue
        if why_not is None:
            report.resent.append(record.message_id)
            logger.warning("Job %s (%s): its message was lost from Redis; sent again.", record.message_id,
                           record.actor_name)  # fmt: skip
        else:
            reason = f"its message was lost from Redis and cannot be sent again: {why_not}"
            _close(record, JobStatus.DEAD_LETTER, reason)
            report.lost.append(record.message_id)
            logger.error("Job %s (%s): %s", record.message_id, record.actor_name, reason)
    if report.resent or report.lost:
        pipeline = get_redis().pipeline(transaction=False)
        pipeline.hincrby(keys.lost_count(broker.namespace), "resent", len(report.resent))
        pipeline.hincrby(keys.lost_count(broker.namespace), "lost", len(report.lost))
        pipeline.execute()
    return report


def reconcile_if_due(broker: dramatiq.Broker) -> ReconcileReport | None:
    """A pass, if reconciling is on and no other worker process ran one this heartbeat interval."""
    config = get_task_config().dramatiq
    if not config.reconcile_grace_ms:
        return None
    if not get_redis().set(keys.reconcile_lock(broker.namespace), "1", nx=True, px=config.heartbeat_interval_ms):
        return None
    return reconcile(broker)


def lost_counts() -> dict[str, int]:
    """How many records the reconciler sent again (``resent``) or closed as lost (``lost``)."""
    raw = get_redis().hgetall(keys.lost_count(dramatiq.get_broker().namespace))
    counts = {name.decode(): int(value) for name, value in raw.items()}
    return {"resent": counts.get("resent", 0), "lost": counts.get("lost", 0)}
