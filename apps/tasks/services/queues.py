"""Queue statistics straight from Redis, in a fixed number of round-trips whatever the queue count.

For each configured queue: ready (``ns:Q``), in flight (fetched, not acknowledged: every broker
process's ``__acks__`` set for the queue), delayed (``ns:Q.DQ`` plus delayed messages held by
workers), dead letters (``ns:Q.XQ``) and the age of the oldest ready message. No KEYS or SCAN.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import dramatiq
from dramatiq.common import dq_name

from apps.tasks import keys, records
from apps.tasks.broker import get_redis
from apps.tasks.config import check_queue, get_task_config


@dataclass
class QueueStats:
    name: str
    ready: int
    in_flight: int
    delayed: int
    dead_letter: int
    oldest_age_seconds: float | None
    consumers: int = 0
    #: Paused by an operator (services.control): consumers fetch nothing, enqueue goes on.
    paused: bool = False

    @property
    def has_consumer(self) -> bool:
        return self.consumers > 0

    def as_dict(self) -> dict:
        return {**asdict(self), "has_consumer": self.has_consumer}


def queue_stats(queue_names: tuple[str, ...] | None = None) -> list[QueueStats]:
    """Counts for each queue (configured ones by default): three pipelined round-trips."""
    client = get_redis()
    namespace = dramatiq.get_broker().namespace
    queues = queue_names or get_task_config().dramatiq.queues

    # 1: every broker process that may hold messages (workers and producers alike).
    broker_ids = [member.decode() for member in client.zrange(keys.heartbeats(namespace), 0, -1)]

    # 2: the counts, and the id at the head of each queue.
    pipeline = client.pipeline(transaction=False)
    for queue in queues:
        pipeline.llen(keys.queue(namespace, queue))
        pipeline.llen(keys.queue_low(namespace, queue))
        pipeline.llen(keys.delay_queue(namespace, queue))
        pipeline.zcard(keys.dead_letters(namespace, queue))
        pipeline.lindex(keys.queue(namespace, queue), 0)
        pipeline.lindex(keys.queue_low(namespace, queue), 0)
        pipeline.exists(keys.paused(namespace, queue))
        for broker_id in broker_ids:
            pipeline.scard(keys.acks(namespace, broker_id, queue))
            pipeline.scard(keys.acks(namespace, broker_id, dq_name(queue)))
    replies = iter(pipeline.execute())
    partial = []
    for queue in queues:
        ready, low, delayed, dead, head, low_head, paused = (next(replies) for _ in range(7))
        ready, head = ready + low, head or low_head
        in_flight = held_delayed = 0
        for _ in broker_ids:
            in_flight += next(replies)
            held_delayed += next(replies)
        partial.append((queue, ready, in_flight, delayed + held_delayed, dead, bool(paused), head))

    # 3: the oldest ready message of each non-empty queue.
    pipeline = client.pipeline(transaction=False)
    heads = [(queue, head) for queue, *_, head in partial if head is not None]
    for queue, head in heads:
        pipeline.hget(keys.queue_messages(namespace, queue), head)
    ages: dict[str, float | None] = {}
    now_ms = time.time() * 1000
    for (queue, _), data in zip(heads, pipeline.execute() if heads else [], strict=True):
        try:
            ages[queue] = max(0.0, (now_ms - dramatiq.Message.decode(data).message_timestamp) / 1000)
        except Exception:  # a missing or corrupt body: no age rather than a failed health check
            ages[queue] = None
    return [
        QueueStats(queue, ready, in_flight, delayed, dead, ages.get(queue), paused=paused)
        for queue, ready, in_flight, delayed, dead, paused, _ in partial
    ]


def purge_queue(queue_name: str) -> int:
    """Delete every message of a queue (ready, delayed and dead letters); pending and retrying
    records of that queue become skipped with the reason. Returns how many messages went."""
    from apps.tasks.models import JobRecord, JobStatus

    queue = check_queue(queue_name)
    broker = dramatiq.get_broker()
    namespace = broker.namespace
    pipeline = get_redis().pipeline(transaction=False)
    for key in (
        keys.queue_messages(namespace, queue),
        keys.delay_queue_messages(namespace, queue),
        keys.dead_letter_messages(namespace, queue),
    ):
        pipeline.hlen(key)
    removed = sum(pipeline.execute())
    broker.flush(queue)
    get_redis().delete(keys.queue_low(namespace, queue))  # dramatiq's flush knows only its own keys
    waiting = JobRecord.objects.filter(queue_name=queue, status__in=[JobStatus.PENDING, JobStatus.RETRYING])
    reason = f"purged from queue {queue!r}"
    for job in waiting.values("message_id", "actor_name", "enqueued_at", "attempts", "backend").iterator(2000):
        finished_at = records.now()
        records.record(
            records.Transition(
                queue_name=queue, status=JobStatus.SKIPPED, error_message=reason, finished_at=finished_at, **job
            ),
            wait=True,
        )
    return removed
