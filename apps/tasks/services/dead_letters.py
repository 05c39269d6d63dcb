"""The broker's dead letters: list, requeue, delete. Job records follow every change.

dramatiq keeps a queue's dead letters in ``ns:Q.XQ`` (a sorted set of per-enqueue Redis ids by
time of death) and ``ns:Q.XQ.msgs`` (Redis id → encoded message). A message is found by its
dramatiq message id by decoding the queue's dead letters; there are few of them by design.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.common import q_name

from apps.tasks import keys, records
from apps.tasks.broker import get_redis
from apps.tasks.config import check_queue, configured_queues
from apps.tasks.enqueue import send_recorded
from apps.tasks.errors import UnknownQueueError  # noqa: F401 (callers catch it from here too)
from apps.tasks.masking import mask_text, mask_value
from apps.tasks.records import from_millis

logger = logging.getLogger(__name__)


class DeadLetterNotFound(LookupError):
    pass


class CorruptMessageError(ValueError):
    """A dead letter that cannot be decoded: it can be deleted, not requeued."""


@dataclass
class DeadLetter:
    redis_id: str
    queue_name: str
    dead_at: datetime
    message: dramatiq.Message | None
    decode_error: str = ""
    raw_preview: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        return self.message.message_id if self.message else self.redis_id

    @property
    def actor_name(self) -> str:
        return self.message.actor_name if self.message else ""

    def as_dict(self) -> dict[str, Any]:
        message = self.message
        return {
            "message_id": self.message_id,
            "redis_id": self.redis_id,
            "queue": self.queue_name,
            "actor": self.actor_name,
            "dead_at": self.dead_at.isoformat(),
            "args": mask_value(list(message.args))[0] if message else None,
            "kwargs": mask_value(dict(message.kwargs))[0] if message else None,
            "retries": message.options.get("retries", 0) if message else None,
            "traceback": mask_text(message.options.get("traceback", "")) if message else "",
            "decode_error": self.decode_error,
        }


def _queues(queue_name: str | None) -> tuple[str, ...]:
    return (check_queue(queue_name),) if queue_name else configured_queues()


def _namespace() -> str:
    return dramatiq.get_broker().namespace


def count_dead_letters(queue_name: str | None = None) -> dict[str, int]:
    pipeline = get_redis().pipeline(transaction=False)
    queues = _queues(queue_name)
    for queue in queues:
        pipeline.zcard(keys.dead_letters(_namespace(), queue))
    return dict(zip(queues, pipeline.execute(), strict=True))


def _decode(redis_id: str, queue: str, score: float, data: bytes | None) -> DeadLetter:
    dead_at = from_millis(score)
    if data is None:
        return DeadLetter(redis_id, queue, dead_at, None, decode_error="message body missing")
    try:
        return DeadLetter(redis_id, queue, dead_at, dramatiq.Message.decode(data))
    except Exception as exc:
        return DeadLetter(redis_id, queue, dead_at, None, decode_error=str(exc), raw_preview=repr(data[:200]))


def list_dead_letters(queue_name: str | None = None, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
    """Dead letters, newest first, of one queue or of every configured queue."""
    client = get_redis()
    namespace = _namespace()
    found: list[DeadLetter] = []
    for queue in _queues(queue_name):
        entries = client.zrevrange(keys.dead_letters(namespace, queue), 0, offset + limit - 1, withscores=True)
        if not entries:
            continue
        bodies = client.hmget(keys.dead_letter_messages(namespace, queue), [redis_id for redis_id, _ in entries])
        for (redis_id, score), data in zip(entries, bodies, strict=True):
            found.append(_decode(redis_id.decode(), queue, score, data))
    found.sort(key=lambda letter: letter.dead_at, reverse=True)
    return found[offset : offset + limit]


def find_dead_letter(message_id: str, queue_name: str | None = None) -> DeadLetter:
    """The dead letter whose dramatiq message id (or Redis id) is ``message_id``."""
    client = get_redis()
    namespace = _namespace()
    for queue in _queues(queue_name):
        scores = dict(client.zrange(keys.dead_letters(namespace, queue), 0, -1, withscores=True))
        if not scores:
            continue
        for redis_id, data in client.hgetall(keys.dead_letter_messages(namespace, queue)).items():
            letter = _decode(redis_id.decode(), queue, scores.get(redis_id, 0), data)
            if message_id in (letter.message_id, letter.redis_id):
                return letter
    raise DeadLetterNotFound(f"no dead letter {message_id!r}" + (f" in queue {queue_name!r}" if queue_name else ""))


def _take(letter: DeadLetter) -> bool:
    """Remove ``letter`` from the dead letters; False if someone else took it first."""
    namespace = _namespace()
    pipeline = get_redis().pipeline(transaction=True)
    pipeline.zrem(keys.dead_letters(namespace, letter.queue_name), letter.redis_id)
    pipeline.hdel(keys.dead_letter_messages(namespace, letter.queue_name), letter.redis_id)
    removed, _ = pipeline.execute()
    return bool(removed)


def requeue_dead_letter(message_id: str, queue_name: str | None = None) -> str:
    """Send a dead letter again, with a fresh retry budget; returns its message id.

    The job record goes back to pending and keeps counting attempts across the requeue.
    """
    from apps.tasks.models import JobRecord

    letter = find_dead_letter(message_id, queue_name)
    if letter.message is None:
        raise CorruptMessageError(f"dead letter {message_id!r} cannot be decoded ({letter.decode_error}); delete it")
    old = letter.message
    record = JobRecord.objects.filter(message_id=old.message_id).only("attempts").first()
    done = record.attempts if record else records.attempt_number(old.options) - 1
    options = {
        name: value
        for name, value in old.options.items()
        if name not in {"retries", "traceback", "requeue_timestamp", "redis_message_id", "eta"}
    }
    options["prior_attempts"] = done
    # A fresh timestamp: AgeLimit would otherwise skip a requeued old message.
    message = dramatiq.Message(
        queue_name=q_name(old.queue_name),
        actor_name=old.actor_name,
        args=old.args,
        kwargs=old.kwargs,
        options=options,
        message_id=old.message_id,
        message_timestamp=int(time.time() * 1000),
    )
    if not _take(letter):
        raise DeadLetterNotFound(f"dead letter {message_id!r} was requeued or deleted by someone else")
    pending = records.pending(message)
    records.record(pending, wait=True, publish=False)
    send_recorded(message, pending=pending)
    logger.info("Requeued dead letter %s (%s) on %s.", message.message_id, message.actor_name, message.queue_name)
    return message.message_id


def requeue_all(queue_name: str | None = None) -> list[str]:
    requeued = []
    for letter in list_dead_letters(queue_name, limit=10**9):
        if letter.message is None:
            logger.warning("Skipping corrupt dead letter %s: %s", letter.redis_id, letter.decode_error)
            continue
        try:
            requeued.append(requeue_dead_letter(letter.message_id, letter.queue_name))
        except DeadLetterNotFound:
            continue
    return requeued


def delete_dead_letter(message_id: str, queue_name: str | None = None) -> None:
    letter = find_dead_letter(message_id, queue_name)
    if not _take(letter):
        raise DeadLetterNotFound(f"dead letter {message_id!r} was requeued or deleted by someone else")
    logger.info("Deleted dead letter %s from %s.", letter.message_id, letter.queue_name)


def delete_all(queue_name: str | None = None) -> int:
    deleted = 0
    for letter in list_dead_letters(queue_name, limit=10**9):
        if _take(letter):
            deleted += 1
    return deleted
