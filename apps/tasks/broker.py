"""The broker, and a Redis client on the broker's database."""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware, MiddlewareError

from apps.tasks import keys

logger = logging.getLogger(__name__)

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

# dramatiq's "enqueue" (message body, queue, heartbeat) plus our event, in one call. The message goes
# straight to an idle consumer when one is waiting (registered by _WAIT_IDLE, not past its deadline):
# into that broker's acks set, as dramatiq's fetch would put it, and onto its inbox, which the
# consumer is blocked on, so it starts without a fetch round-trip. Otherwise it is queued and a
# token on the wake-up list wakes an idle consumer to fetch it.
# KEYS: events stream, queue, queue msgs, heartbeats, wake list, idle consumers.
# ARGV: redis id, data, now, broker id, wake tokens, namespace, queue name,
#       then (max length, 8 event values) or 0 for no event.
_ENQUEUE_READY = """
if redis.call("hsetnx", KEYS[3], ARGV[1], ARGV[2]) == 0 then
    return 0  -- a retry of a call that went through (redis-py retries on a timeout): nothing twice
end
if #ARGV > 8 then
    redis.call("xadd", KEYS[1], "MAXLEN", "~", ARGV[8], "*",
        "id", ARGV[9], "source", ARGV[10], "event", ARGV[11], "job_id", ARGV[12],
        "queue", ARGV[13], "actor", ARGV[14], "meta", ARGV[15], "timestamp", ARGV[16])
end
redis.call("zadd", KEYS[4], ARGV[3], ARGV[4])
local clock = redis.call("time")
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
while true do
    local waiter = redis.call("zpopmin", KEYS[6])
    if #waiter == 0 then break end
    if tonumber(waiter[2]) > now_ms then
        redis.call("sadd", ARGV[6] .. ":__acks__." .. waiter[1] .. "." .. ARGV[7], ARGV[1])
        redis.call("rpush", ARGV[6] .. ":__inbox__." .. waiter[1] .. "." .. ARGV[7], ARGV[2])
        return 2
    end
end
redis.call("rpush", KEYS[2], ARGV[1])
redis.call("lpush", KEYS[5], 1)
redis.call("ltrim", KEYS[5], 0, tonumber(ARGV[5]) - 1)
return 1
"""

# A consumer leaves the idle set and takes whatever was handed to its inbox meanwhile (Redis 5+:
# no LPOP count). KEYS: idle consumers, inbox. ARGV: broker id.
_LEAVE_IDLE = """
redis.call("zrem", KEYS[1], ARGV[1])
local handed = redis.call("lrange", KEYS[2], 0, -1)
redis.call("del", KEYS[2])
return handed
"""

# An idle consumer offers to take the next message directly until ARGV[2] ms from now (Redis
# clock): the time its blocking pop lasts. KEYS: idle consumers, inboxes. ARGV: broker id, ms, inbox.
_WAIT_IDLE = """
local clock = redis.call("time")
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call("zadd", KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call("sadd", KEYS[2], ARGV[3])
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Whether this consumer may still be registered as idle, or have a message in its inbox:
        # true at first, in case an earlier consumer of this process and queue left one there.
        self.maybe_registered = True

    def __next__(self):
        """dramatiq's fetch, except for an idle consumer: instead of sleeping, it registers as
        idle and blocks (up to the idle timeout) on its inbox and the queue's wake-up list. An
        enqueue hands the message straight to a registered consumer's inbox, or else pushes a
        token to the wake-up list, so an idle worker starts a message at once rather than after
        a poll back-off of up to a second."""
        if self.queue_name.endswith(".DQ") or self.message_cache:
            return super().__next__()
        try:
            if self.outstanding_message_count < self.prefetch:
                count = self.prefetch - self.outstanding_message_count
                if self.maybe_registered:
                    self.message_cache = self.broker.fetch_and_leave_idle(self.queue_name, count)
                    self.maybe_registered = False
                else:
                    self.message_cache = self.broker.do_fetch(self.queue_name, count)
                if not self.message_cache:
                    # Registered until the next fetch_and_leave_idle, whatever happens: a hand-over
                    # may come from this wait's registration or from one left by a retried wait.
                    self.maybe_registered = True
                    handed = self.broker.wait_idle(self.queue_name, self.timeout)
                    if handed is None:
                        return None
                    self.message_cache = [handed]
            return super().__next__()
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

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
            self.broker.requeue_encoded(self.queue_name, cached)
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

    def wait_idle(self, queue_name: str, timeout_ms: int) -> bytes | None:
        """Register this process's consumer of ``queue_name`` as idle and block up to ``timeout_ms``
        on its inbox and the queue's wake-up list, in one round-trip. Returns a message handed
        over (already in this process's acks set), or None (woken by a token, or timed out)."""
        namespace, inbox = self.namespace, keys.inbox(self.namespace, self.broker_id, queue_name)
        pipeline = self.client.pipeline(transaction=False)
        pipeline.evalsha(
            self._sha(_WAIT_IDLE), 2, keys.idle_consumers(namespace, queue_name), keys.inboxes(namespace),
            self.broker_id, int(timeout_ms), inbox,
        )  # fmt: skip
        pipeline.blpop([inbox, self.wake_key(queue_name)], timeout=timeout_ms / 1000)
        registered, popped = pipeline.execute(raise_on_error=False)
        if isinstance(popped, Exception):
            raise popped
        if isinstance(registered, redis.exceptions.NoScriptError):
            self._script_shas.clear()  # Redis restarted: loaded again on the next wait (this one still waited)
        elif isinstance(registered, Exception):
            raise registered
        if popped is not None and popped[0].decode() == inbox:
            return popped[1]
        return None

    def fetch_and_leave_idle(self, queue_name: str, count: int) -> list[bytes]:
        """Leave the idle set and take what was handed over meanwhile, then dramatiq's fetch of up
        to ``count`` more (none for 0), in one round-trip and in that order: nothing is handed over
        once the idle entry is gone, and nothing handed over before is left in the inbox. If either
        part fails, what the other part took (already in this process's acks set) is put back."""
        leave_keys = [
            keys.idle_consumers(self.namespace, queue_name),
            keys.inbox(self.namespace, self.broker_id, queue_name),
        ]
        pipeline = self.client.pipeline(transaction=False)
        pipeline.evalsha(self._sha(_LEAVE_IDLE), 2, *leave_keys, self.broker_id)
        if count > 0:
            fetch_args = self._dispatch_args("fetch", queue_name, count)
            pipeline.evalsha(self.scripts["dispatch"].sha, 1, self.namespace, *fetch_args)
        handed, *fetched = pipeline.execute(raise_on_error=False)
        taken: list[bytes] = []
        try:
            if isinstance(handed, redis.exceptions.NoScriptError):  # Redis restarted: load it again
                self._script_shas.clear()
                handed = self.client.evalsha(self._sha(_LEAVE_IDLE), 2, *leave_keys, self.broker_id)
            if isinstance(handed, Exception):
                raise handed
            taken.extend(handed)
            if fetched:
                result = fetched[0]
                if isinstance(result, redis.exceptions.NoScriptError):
                    result = self.do_fetch(queue_name, count)  # dramatiq's Script loads it again
                if isinstance(result, Exception):
                    raise result
                taken.extend(result)
        except BaseException:
            for result in [handed, *fetched]:
                if isinstance(result, list):
                    taken.extend(item for item in result if item not in taken)
            self.requeue_encoded(queue_name, taken)
            raise
        return taken

    def requeue_encoded(self, queue_name: str, messages: list[bytes | None]) -> None:
        """Put encoded messages this process holds (in its acks set) back on their queue; entries
        that are empty or cannot be decoded are skipped (dramatiq's maintenance has their ids)."""
        redis_ids = []
        for data in messages:
            try:
                redis_ids.append(Message.decode(data).options["redis_message_id"])
            except Exception:  # None (a message deleted meanwhile) or a corrupt body
                # Never the body in the log: arguments may hold secrets.
                logger.warning("An undecodable entry (%d bytes) on %s was not requeued.", len(data or b""), queue_name)
        if redis_ids:
            self.do_requeue(queue_name, *redis_ids)

    def _dispatch_args(self, command: str, queue_name: str, *args: Any) -> list[Any]:
        """The arguments of dramatiq's dispatch script for ``command`` (as its ``do_*`` methods pass them)."""
        return [
            command, current_millis(), queue_name, self.broker_id, self.heartbeat_timeout, self.dead_message_ttl,
            self._should_do_maintenance(command), self._max_unpack_size(), *args,
        ]  # fmt: skip

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
        stream = keys.events(self.namespace)
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
                pipeline.evalsha(self._sha(_XADD_MANY), 1, keys.events(self.namespace), *values)
            if priority > 0 and delay is None:
                queue_keys = [
                    keys.queue(self.namespace, queue_name),
                    keys.queue_messages(self.namespace, queue_name),
                    keys.queue_priorities(self.namespace, queue_name),
                ]
                pipeline.evalsha(
                    self._sha(_ENQUEUE_BY_PRIORITY), 4, *queue_keys, keys.heartbeats(self.namespace),
                    redis_id, message.encode(), priority, now, self.broker_id,
                )  # fmt: skip
            else:
                dispatch_args = self._dispatch_args("enqueue", queue_name, redis_id, message.encode())
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
        """The common case in one script call: event (if any), message, heartbeat, and either the
        hand-over to an idle consumer or the queue and a wake-up token."""
        from apps.tasks.config import get_task_config

        values = self._event_values([event], get_task_config().events_max_length) if event else [0]
        namespace = self.namespace
        script_keys = [
            keys.events(namespace), keys.queue(namespace, queue_name), keys.queue_messages(namespace, queue_name),
            keys.heartbeats(namespace), self.wake_key(queue_name), keys.idle_consumers(namespace, queue_name),
        ]  # fmt: skip
        arguments = [redis_id, data, now, self.broker_id, WAKE_TOKENS, namespace, queue_name, *values]
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
                keys.acks(self.namespace, self.broker_id, queue_name),
                keys.queue_messages(self.namespace, queue_name),
                keys.dead_letters(self.namespace, canonical),
                keys.dead_letter_messages(self.namespace, canonical),
                keys.heartbeats(self.namespace),
                keys.queue_priorities(self.namespace, queue_name),
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
        self._hook_cache: dict[str, tuple[list[Middleware], list[Middleware]]] = {}
        super().__init__(client=client, **broker_parameters)
        self._settle_script = None
        self._script_shas: dict[str, str] = {}

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """dramatiq's, calling only the middleware that implement the hook: of the eleven, none
        handles ``ack`` and one ``enqueue``, so most calls would be no-ops (four signals a message)."""
        name = "before_" + signal
        for middleware in self._implementers(name):
            try:
                getattr(middleware, name)(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", name, middleware, exc_info=True)

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        name = "after_" + signal
        for middleware in reversed(self._implementers(name)):
            try:
                getattr(middleware, name)(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", name, middleware, exc_info=True)

    def _implementers(self, hook: str) -> list[Middleware]:
        """The middleware, in order, whose class or instance defines ``hook``; recomputed whenever
        the middleware list differs from the one the answer was computed for."""
        cached = self._hook_cache.get(hook)
        if cached is not None and cached[0] == self.middleware:
            return cached[1]
        base = getattr(Middleware, hook, None)
        implementers = [
            middleware
            for middleware in self.middleware
            if hook in vars(middleware) or getattr(type(middleware), hook, None) is not base
        ]
        self._hook_cache[hook] = (list(self.middleware), implementers)
        return implementers

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
