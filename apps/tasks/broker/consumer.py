"""The broker's consumer: acks after the job record commits, and idle consumers that are handed
messages directly instead of polling."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, NamedTuple

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import compute_backoff, q_name
from dramatiq.errors import ConnectionClosed, DecodeError
from dramatiq.message import Message

from apps.tasks import records
from apps.tasks.errors import MalformedMessage
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)

#: Set on the MessageProxy of a message put back from a dead broker process.
REDELIVERED_ATTRIBUTE = "tasks_redelivered"
#: How a redelivered message whose record is final is settled instead of running again.
_SETTLE_FINISHED = {
    JobStatus.COMPLETED: "ack", JobStatus.SKIPPED: "ack", JobStatus.DEAD_LETTER: "nack", JobStatus.FAILED: "nack",
}  # fmt: skip
MALFORMED_ERROR_TYPE = f"{MalformedMessage.__module__}.{MalformedMessage.__qualname__}"
#: The fields of an encoded message, and the types a worker relies on.
_FIELD_TYPES = {
    "queue_name": str, "actor_name": str, "args": (list, tuple), "kwargs": dict, "options": dict,
    "message_id": str, "message_timestamp": (int, float),
}  # fmt: skip


class Fetched(NamedTuple):
    """A fetched entry: its Redis id (None when handed over: the body carries it), its body (None:
    missing), and whether maintenance put it back from a dead broker process."""

    redis_id: str | None
    data: bytes | None
    redelivered: bool = False


def decode(data: bytes | None) -> Message:
    """The message in ``data``, or MalformedMessage saying why there is none."""
    if data is None:
        raise MalformedMessage("the queue entry has no body")
    try:
        message = Message.decode(data)
    except Exception as exc:
        cause = exc  # the innermost error: dramatiq's DecodeError wraps it and quotes the body
        while isinstance(cause, DecodeError):
            cause = cause.error
        fields = _json_object(data)
        raise MalformedMessage(
            f"{type(cause).__name__}: {str(cause)[:200]}",
            message_id=_text(fields.get("message_id")),
            actor_name=_text(fields.get("actor_name")),
        ) from None
    for name, expected in _FIELD_TYPES.items():
        value = getattr(message, name)
        if not isinstance(value, expected) or isinstance(value, bool):
            message_id = message.message_id if isinstance(message.message_id, str) else None
            actor = message.actor_name if isinstance(message.actor_name, str) else None
            raise MalformedMessage(
                f"field {name!r} is {type(value).__name__}, not {_type_names(expected)}",
                message_id=message_id, actor_name=actor,
            )  # fmt: skip
    return message


def _json_object(data: bytes) -> dict[str, Any]:
    """``data`` as a JSON object, or {} (to name the job of an entry that is no message)."""
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _type_names(expected: type | tuple[type, ...]) -> str:
    return " or ".join(kind.__name__ for kind in (expected if isinstance(expected, tuple) else (expected,)))


class RecordedAckConsumer(_RedisConsumer):
    """Acknowledges a message only after its job record is committed.

    The lifecycle recorder writes records in batches; acknowledging at once would let a
    SIGKILL between the ack and the next batch leave a finished job recorded as running,
    forever. Instead the ack (or nack, for a dead letter) is handed to the recorder, which
    sends it right after the batch holding the message's final transition commits. If the
    process dies first, the message is still unacknowledged and is redelivered.
    Delay queues (``.DQ``) are acknowledged at once: they carry no job state.
    """

    def ack(self, message) -> None:
        self._settle(message, "ack")

    def nack(self, message) -> None:
        self._settle(message, "nack")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Whether this consumer may still be registered as idle, or have a message in its inbox:
        # true at first, in case an earlier consumer of this process and queue left one there.
        self.maybe_registered = True

    def __next__(self):
        """The next message, or None. As dramatiq's fetch, except that:

        - an idle consumer, instead of sleeping, registers as idle and blocks (up to the idle
          timeout) on its inbox and the queue's wake-up list: an enqueue hands the message straight
          to a registered consumer's inbox, or else pushes a token to the wake-up list, so an idle
          worker starts a message at once rather than after a poll back-off of up to a second;
        - an entry that is no message (see ``decode``) goes to the dead letters with a record
          saying why, instead of crashing this consumer thread and staying in flight for ever;
        - a message put back from a dead worker whose job had finished there (its record committed,
          its ack still waiting for the batch) is settled as it was meant to be, without running.
        """
        try:
            while True:
                if not self.message_cache and not self._fill():
                    return None
                redis_id, data, redelivered = self.message_cache.pop(0)
                try:
                    message = decode(data)
                except MalformedMessage as malformed:
                    self._bury(redis_id, data, malformed)
                    continue
                if redelivered and self._settled_already(redis_id, message):
                    continue
                self.misses = 0
                self.queued_message_ids.add(message.message_id)
                proxy = MessageProxy(message)
                if redelivered:  # its worker died: it runs alone in its process (middleware.worker_registry)
                    proxy.__dict__[REDELIVERED_ATTRIBUTE] = True
                return proxy
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def _fill(self) -> bool:
        """Fetch into the cache, waiting idle if there is nothing; False when nothing came."""
        if self.outstanding_message_count >= self.prefetch:
            # As dramatiq: back off until the worker threads have taken some. Returning at once
            # would spin the consumer thread (next, delayed-message check, next...) for the GIL.
            self._back_off()
            return False
        count = self.prefetch - self.outstanding_message_count
        if self.queue_name.endswith(".DQ"):  # delayed messages: dramatiq's polling back-off
            self.message_cache = self.broker.fetch(self.queue_name, count)
            if not self.message_cache:
                self._back_off()
            return bool(self.message_cache)
        if self.maybe_registered:
            self.message_cache = self.broker.fetch_and_leave_idle(self.queue_name, count)
            self.maybe_registered = False
        else:
            self.message_cache = self.broker.fetch(self.queue_name, count)
        if not self.message_cache:
            # Registered until the next fetch_and_leave_idle, whatever happens: a hand-over
            # may come from this wait's registration or from one left by a retried wait.
            self.maybe_registered = True
            handed = self.broker.wait_idle(self.queue_name, self.timeout)
            if handed is not None:
                self.message_cache = [Fetched(None, handed)]
        return bool(self.message_cache)

    def _back_off(self) -> None:
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
        time.sleep(backoff_ms / 1000)

    def _settled_already(self, redis_id: str, message: Message) -> bool:
        """True when the redelivered message's job is finished: it is acked (completed, skipped) or
        put back in the dead letters (dead_letter, failed) and not run again."""
        try:
            status = records.recorded_status(message.message_id)
        except Exception:  # the database is down: run it (at least once) rather than guess
            logger.warning("Redelivered message %s: its record could not be read.", message.message_id, exc_info=True)
            return False
        self.broker.forget_redelivery(redis_id)
        command = _SETTLE_FINISHED.get(status)
        if command is None:
            return False
        logger.warning(
            "Redelivered message %s (%s) had finished as %s before its worker died: %s it without running.",
            message.message_id, message.actor_name, status, command,
        )  # fmt: skip
        self.broker.settle_many(self.queue_name, command, [redis_id])
        return True

    def _bury(self, redis_id: str | None, data: bytes | None, malformed: MalformedMessage) -> None:
        """Record why, then move the entry to the dead letters (a crash in between redelivers it,
        and it is buried again: the record is an upsert)."""
        size = len(data or b"")
        logger.error("Queue %s: entry %s (%d bytes) is no message: %s", self.queue_name, redis_id, size, malformed)
        if redis_id is None:  # handed over, so written by our own enqueue: cannot happen unless edited by hand
            return
        at = records.now()
        records.record(
            records.Transition(
                message_id=malformed.message_id or redis_id, actor_name=malformed.actor_name or "",
                queue_name=q_name(self.queue_name), status=JobStatus.DEAD_LETTER, enqueued_at=at, finished_at=at,
                error_type=MALFORMED_ERROR_TYPE, error_message=f"undecodable message: {malformed}",
            ),
            wait=True,
        )  # fmt: skip
        self.broker.bury(self.queue_name, redis_id, data)

    def close(self) -> None:
        """Leave the idle set and put back on the queue the messages fetched or handed over but
        not started (dramatiq would leave them in the acks set until a heartbeat timeout)."""
        if self.queue_name.endswith(".DQ"):
            return
        try:
            if self.maybe_registered:
                self.message_cache.extend(self.broker.fetch_and_leave_idle(self.queue_name, 0))
                self.maybe_registered = False
            cached, self.message_cache = self.message_cache, []
            self.broker.requeue_fetched(self.queue_name, cached)
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def _settle(self, message, command: str) -> None:
        if self.queue_name.endswith(".DQ"):
            return super().ack(message) if command == "ack" else super().nack(message)
        self.queued_message_ids.discard(message.message_id)
        # The worker emits after_ack/after_nack right after this call; the broker holds them back
        # and emits them once the ack has reached Redis (RedisBroker.settle_messages).
        self.broker.defer_settle_hook()
        records.settle_after_commit(self.broker.settle_messages, (self.queue_name, command), message)
