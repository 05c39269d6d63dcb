"""The broker, and a Redis client on the broker's database."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import current_millis, dq_name, q_name, xq_name
from dramatiq.errors import ConnectionClosed

from apps.tasks import keys

# dramatiq's dispatch.lua "ack" and "nack" commands, for many messages of one queue at once.
_SETTLE_MANY = """
redis.call("zadd", KEYS[5], ARGV[2], ARGV[3])
for i = 4, #ARGV do
    local id = ARGV[i]
    if redis.call("srem", KEYS[1], id) > 0 then
        if ARGV[1] == "nack" then
            local message = redis.call("hget", KEYS[2], id)
            if message then
                redis.call("zadd", KEYS[3], ARGV[2], id)
                redis.call("hset", KEYS[4], id, message)
            end
        end
        redis.call("hdel", KEYS[2], id)
        redis.call("hdel", KEYS[6], id)
    end
end
return #ARGV - 3
"""

#: Tokens kept in a queue's wake-up list: at most this many idle consumers wake per burst.
WAKE_TOKENS = 64

# dramatiq's "enqueue" (message body, queue, heartbeat) plus our event and wake-up token, in one call.
# KEYS: events stream, queue, queue msgs, heartbeats, wake list.
# ARGV: redis id, data, now, broker id, wake tokens, then (max length, 8 event values) or 0 for no event.
_ENQUEUE_READY = """
if #ARGV > 6 then
    redis.call("xadd", KEYS[1], "MAXLEN", "~", ARGV[6], "*",
        "id", ARGV[7], "source", ARGV[8], "event", ARGV[9], "job_id", ARGV[10],
        "queue", ARGV[11], "actor", ARGV[12], "meta", ARGV[13], "timestamp", ARGV[14])
end
redis.call("zadd", KEYS[4], ARGV[3], ARGV[4])
redis.call("hset", KEYS[3], ARGV[1], ARGV[2])
redis.call("rpush", KEYS[2], ARGV[1])
redis.call("lpush", KEYS[5], 1)
redis.call("ltrim", KEYS[5], 0, tonumber(ARGV[5]) - 1)
return 1
"""

#: The message option holding a priority (higher runs first); see RedisBroker.enqueue.
PRIORITY_OPTION = "queue_priority"

# Enqueue one message ahead of every waiting message of lower priority (dramatiq's own enqueue
# appends). Waiting messages without an entry in the priority hash count as priority 0; the scan
# stops at the first lower one, so it only walks past the messages that outrank this one.
# KEYS: queue, queue msgs, queue priorities, heartbeats. ARGV: id, data, priority, now, broker id.
_ENQUEUE_BY_PRIORITY = """
redis.call("zadd", KEYS[4], ARGV[4], ARGV[5])
redis.call("hset", KEYS[2], ARGV[1], ARGV[2])
local priority = tonumber(ARGV[3])
redis.call("hset", KEYS[3], ARGV[1], priority)
local length = redis.call("llen", KEYS[1])
local start = 0
while start < length do
    local ids = redis.call("lrange", KEYS[1], start, start + 99)
    local priorities = redis.call("hmget", KEYS[3], unpack(ids))
    for i, id in ipairs(ids) do
        if (tonumber(priorities[i]) or 0) < priority then
            redis.call("linsert", KEYS[1], "BEFORE", id, ARGV[1])
            return 1
        end
    end
    start = start + 100
end
redis.call("rpush", KEYS[1], ARGV[1])
return 1
"""


#: Lifecycle event fields, in the order _XADD_MANY expects them.
EVENT_FIELDS = ("id", "source", "event", "job_id", "queue", "actor", "meta", "timestamp")

# XADD every event of a batch in one call. ARGV: max length, then 8 values per event in EVENT_FIELDS order.
_XADD_MANY = """
local n = #ARGV
for i = 2, n, 8 do
    redis.call("xadd", KEYS[1], "MAXLEN", "~", ARGV[1], "*",
        "id", ARGV[i], "source", ARGV[i + 1], "event", ARGV[i + 2], "job_id", ARGV[i + 3],
        "queue", ARGV[i + 4], "actor", ARGV[i + 5], "meta", ARGV[i + 6], "timestamp", ARGV[i + 7])
end
return n
"""
_EVENTS_PER_CALL = 500


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

    def __next__(self):
        """dramatiq's fetch, except that an idle consumer blocks on its queue's wake-up list
        (BLPOP, up to the idle timeout) instead of sleeping: an enqueue pushes a token there in
        the same round-trip as the message, so an idle worker picks a message up at once rather
        than after a poll back-off of up to a second."""
        if self.queue_name.endswith(".DQ") or self.message_cache:
            return super().__next__()
        try:
            if self.outstanding_message_count < self.prefetch:
                self.message_cache = self.broker.do_fetch(
                    self.queue_name, self.prefetch - self.outstanding_message_count
                )
                if not self.message_cache:
                    self.broker.client.blpop([self.broker.wake_key(self.queue_name)], timeout=self.timeout / 1000)
                    return None
            return super().__next__()
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def _settle(self, message, command: str) -> None:
        if self.queue_name.endswith(".DQ"):
            return super().ack(message) if command == "ack" else super().nack(message)
        from apps.tasks.services.recorder import get_recorder

        self.queued_message_ids.discard(message.message_id)
        get_recorder().settle_after_flush(self.broker, self.queue_name, message.options["redis_message_id"], command)


class RedisBroker(DramatiqRedisBroker):
    """dramatiq's RedisBroker, with connection options applied to a URL's pool, acks that wait
    for the job record (see RecordedAckConsumer) and maintenance on demand.

    dramatiq builds its pool with ``ConnectionPool.from_url(url)`` and drops every
    other connection parameter when a URL is given, so pool size, timeouts and
    keepalive would silently not apply. Here they do.
    """

    @property
    def consumer_class(self):
        return RecordedAckConsumer

    def wake_key(self, queue_name: str) -> str:
        """The list idle consumers of ``queue_name`` block on (keys.wake)."""
        return keys.wake(self.namespace, queue_name)

    def _sha(self, script: str) -> str:
        """The SHA of one of our Lua scripts, loaded into Redis once per broker."""
        sha = self._script_shas.get(script)
        if sha is None:
            sha = self._script_shas[script] = self.client.script_load(script)
        return sha

    def _event_values(self, events: list[dict[str, str]], max_length: int) -> list[Any]:
        values: list[Any] = [max_length]
        for fields in events:
            values.extend(fields[name] for name in EVENT_FIELDS)
        return values

    def publish_events(self, events: list[dict[str, str]], max_length: int) -> None:
        """Append lifecycle events to the namespace's capped stream, in order, in one call."""
        stream = f"{self.namespace}:tasks:events"  # keys.events()
        for start in range(0, len(events), _EVENTS_PER_CALL):
            values = self._event_values(events[start : start + _EVENTS_PER_CALL], max_length)
            try:
                self.client.evalsha(self._sha(_XADD_MANY), 1, stream, *values)
            except redis.exceptions.NoScriptError:  # Redis restarted: load again
                self._script_shas.clear()
                self.client.evalsha(self._sha(_XADD_MANY), 1, stream, *values)

    def enqueue(self, message: Message, *, delay: int | None = None, event: dict[str, str] | None = None) -> Message:
        """dramatiq's enqueue, in one round-trip with:
        - a token on the queue's wake-up list, so an idle consumer fetches at once;
        - with ``event``, the lifecycle event, written first;
        - with a ``queue_priority`` option above 0, a place ahead of every waiting message of
          lower priority (once due, for a delayed message)."""
        from apps.tasks.config import get_task_config

        priority = message.options.get(PRIORITY_OPTION, 0)
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": str(uuid4())})
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        self.emit_before("enqueue", message, delay)
        redis_id, now = message.options["redis_message_id"], current_millis()
        if delay is None and priority <= 0:
            self._enqueue_ready(queue_name, redis_id, message.encode(), now, event)
            self.emit_after("enqueue", message, delay)
            return message
        for attempt in (1, 2):
            # EVALSHA directly: a pipeline given Script objects asks SCRIPT EXISTS on every execute.
            pipeline = self.client.pipeline(transaction=False)
            if event is not None:
                values = self._event_values([event], get_task_config().events_max_length)
                pipeline.evalsha(self._sha(_XADD_MANY), 1, f"{self.namespace}:tasks:events", *values)
            if priority > 0 and delay is None:
                queue_keys = [f"{self.namespace}:{queue_name}{suffix}" for suffix in ("", ".msgs", ".prio")]
                pipeline.evalsha(
                    self._sha(_ENQUEUE_BY_PRIORITY), 4, *queue_keys, f"{self.namespace}:__heartbeats__",
                    redis_id, message.encode(), priority, now, self.broker_id,
                )  # fmt: skip
            else:
                dispatch_args = [
                    "enqueue", now, queue_name, self.broker_id, self.heartbeat_timeout, self.dead_message_ttl,
                    self._should_do_maintenance("enqueue"), self._max_unpack_size(), redis_id, message.encode(),
                ]  # fmt: skip
                pipeline.evalsha(self.scripts["dispatch"].sha, 1, self.namespace, *dispatch_args)
            if delay is None:  # wake an idle consumer; a few tokens are enough to wake them all
                pipeline.lpush(self.wake_key(queue_name), 1)
                pipeline.ltrim(self.wake_key(queue_name), 0, WAKE_TOKENS - 1)
            try:
                pipeline.execute()
                break
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                self._script_shas.clear()
                self.scripts["dispatch"].sha = self.client.script_load(self.scripts["dispatch"].script)
        self.emit_after("enqueue", message, delay)
        return message

    def _enqueue_ready(self, queue_name: str, redis_id: str, data: bytes, now: int, event: dict | None) -> None:
        """The common case in one script call: event (if any), message, heartbeat, wake-up token."""
        from apps.tasks.config import get_task_config

        values = self._event_values([event], get_task_config().events_max_length) if event else [0]
        queue = f"{self.namespace}:{queue_name}"
        script_keys = [f"{self.namespace}:tasks:events", queue, f"{queue}.msgs", f"{self.namespace}:__heartbeats__"]
        script_keys.append(self.wake_key(queue_name))
        arguments = [redis_id, data, now, self.broker_id, WAKE_TOKENS, *values]
        try:
            self.client.evalsha(self._sha(_ENQUEUE_READY), len(script_keys), *script_keys, *arguments)
        except redis.exceptions.NoScriptError:  # Redis restarted: load again
            self._script_shas.clear()
            self.client.evalsha(self._sha(_ENQUEUE_READY), len(script_keys), *script_keys, *arguments)

    def settle_many(self, queue_name: str, command: str, redis_message_ids: list[str]) -> None:
        """Ack or nack many messages of one queue in one script call (dramatiq's ack/nack, batched)."""
        if self._settle_script is None:
            self._settle_script = self.client.register_script(_SETTLE_MANY)
        canonical = q_name(queue_name)
        self._settle_script(
            keys=[
                f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}",
                f"{self.namespace}:{queue_name}.msgs",
                f"{self.namespace}:{xq_name(canonical)}",
                f"{self.namespace}:{xq_name(canonical)}.msgs",
                f"{self.namespace}:__heartbeats__",
                f"{self.namespace}:{queue_name}.prio",
            ],
            args=[command, current_millis(), self.broker_id, *redis_message_ids],
        )

    def __init__(self, *, url: str | None = None, client: redis.Redis | None = None, **parameters: Any) -> None:
        broker_parameters = {
            name: parameters.pop(name)
            for name in ("middleware", "namespace", "maintenance_chance", "heartbeat_timeout", "dead_message_ttl")
            if name in parameters
        }
        if url and client is None:
            client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, **parameters))
        elif client is None:
            client = redis.Redis(**parameters)
        super().__init__(client=client, **broker_parameters)
        self._settle_script = None
        self._script_shas: dict[str, str] = {}

    def run_maintenance(self, queue_name: str) -> None:
        """Run dramatiq's maintenance on one queue now, rather than on 1 call in 1,000.

        It puts the unacknowledged messages of broker processes whose heartbeat is older than
        ``heartbeat_timeout`` back on the queue, and drops expired dead letters. ``qsize`` is the
        harmless command that carries it.
        """
        self.scripts["dispatch"](
            args=[
                "qsize",
                current_millis(),
                queue_name,
                self.broker_id,
                self.heartbeat_timeout,
                self.dead_message_ttl,
                1,
                self._max_unpack_size(),
            ],
            keys=[self.namespace],
        )


def get_broker() -> dramatiq.Broker:
    """The process's broker, as django_dramatiq configured it from ``DRAMATIQ_BROKER``."""
    return dramatiq.get_broker()


def get_redis() -> redis.Redis:
    """A client on the broker's Redis database (DB 2 by default), sharing the broker's pool."""
    broker = get_broker()
    client = getattr(broker, "client", None)
    if client is None:
        raise RuntimeError(f"the configured broker {type(broker).__name__} has no Redis client")
    return client
