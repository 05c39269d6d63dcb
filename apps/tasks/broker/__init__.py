"""The broker, and a Redis client on the broker's database.

``RedisBroker`` is dramatiq's, with connection options applied, acks that wait for the job record
(``consumer.RecordedAckConsumer``), idle consumers handed messages directly, priorities, batched
acks and events; its Lua scripts live in ``lua/`` (``scripts.Scripts``). It is the event sink of
``apps.tasks.records``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.middleware import Middleware, MiddlewareError

from apps.tasks import keys, records
from apps.tasks.config import get_task_config

from .consumer import Fetched, RecordedAckConsumer
from .scripts import Scripts

logger = logging.getLogger(__name__)


#: Tokens kept in a queue's wake-up list: at most this many idle consumers wake per burst.
WAKE_TOKENS = 64
#: The message option holding a priority (higher runs first); see RedisBroker.enqueue.
PRIORITY_OPTION = "queue_priority"
#: Minute counters of finished jobs live this long (the dashboard charts the last hour).
MINUTE_COUNTS_TTL_SECONDS = 2 * 3600

_SETTLE_SIGNALS = frozenset({"ack", "nack"})

#: Lifecycle event fields, in the order xadd_many.lua expects them.
EVENT_FIELDS = ("id", "source", "event", "job_id", "queue", "actor", "meta", "timestamp")

_EVENTS_PER_CALL = 500


def _fetched(flat: list[Any]) -> list[Fetched]:
    """fetch.lua's ``[id, body, redelivered, id, body, redelivered, ...]``."""
    return [Fetched(flat[index].decode(), flat[index + 1], flat[index + 2] == 1) for index in range(0, len(flat), 3)]


def redis_message_id(message: Message) -> str:
    """A message's Redis id: its job id and attempt number. dramatiq draws a random one per enqueue;
    ours names the attempt, so a job record says where its message must be (services.reconcile),
    and an attempt sent twice while the first is still queued is stored once (hsetnx)."""
    return f"{message.message_id}.{records.attempt_number(message.options)}"


def waiting_redis_id(record: Any) -> str:
    """The Redis id of the message a pending or retrying job record waits for: its next attempt."""
    return f"{record.message_id}.{record.attempts + 1}"


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
            self.lua.sha("wait_idle"), 2, keys.idle_consumers(namespace, queue_name), keys.inboxes(namespace),
            self.broker_id, int(timeout_ms), inbox,
        )  # fmt: skip
        pipeline.blpop([inbox, self.wake_key(queue_name)], timeout=timeout_ms / 1000)
        registered, popped = pipeline.execute(raise_on_error=False)
        if isinstance(popped, Exception):
            raise popped
        # After NOSCRIPT the script is loaded again on the next wait (this one still waited).
        if not self.lua.pipeline_failed([registered]) and isinstance(registered, Exception):
            raise registered
        if popped is not None and popped[0].decode() == inbox:
            return popped[1]
        return None

    def fetch(self, queue_name: str, count: int) -> list[Fetched]:
        """dramatiq's fetch of up to ``count`` messages, with each one's Redis id (see fetch.lua)."""
        if self._should_do_maintenance("fetch"):
            self.run_maintenance(queue_name)  # dramatiq's 1-in-N maintenance, which its fetch carried
        return _fetched(self.lua.run("fetch", self._fetch_keys(queue_name), [count, current_millis(), self.broker_id]))

    def _fetch_keys(self, queue_name: str) -> list[str]:
        namespace = self.namespace
        return [
            keys.queue(namespace, queue_name), keys.queue_messages(namespace, queue_name),
            keys.acks(namespace, self.broker_id, queue_name), keys.heartbeats(namespace), keys.redelivered(namespace),
            keys.queue_low(namespace, queue_name), keys.paused(namespace, queue_name),
        ]  # fmt: skip

    def fetch_and_leave_idle(self, queue_name: str, count: int) -> list[Fetched]:
        """Leave the idle set and take what was handed over meanwhile, then a fetch of up to
        ``count`` more (none for 0), in one round-trip and in that order: nothing is handed over
        once the idle entry is gone, and nothing handed over before is left in the inbox. If either
        part fails, what the other part took (already in this process's acks set) is put back."""
        leave_keys = [
            keys.idle_consumers(self.namespace, queue_name),
            keys.inbox(self.namespace, self.broker_id, queue_name),
        ]
        pipeline = self.client.pipeline(transaction=False)
        pipeline.evalsha(self.lua.sha("leave_idle"), 2, *leave_keys, self.broker_id)
        if count > 0:
            fetch_args = [count, current_millis(), self.broker_id]
            fetch_keys = self._fetch_keys(queue_name)
            pipeline.evalsha(self.lua.sha("fetch"), len(fetch_keys), *fetch_keys, *fetch_args)
        results = pipeline.execute(raise_on_error=False)
        if self.lua.pipeline_failed(results):  # Redis forgot the scripts: what did not run, once more
            results = [
                self.lua.run(name, script_keys, args) if isinstance(result, redis.exceptions.NoScriptError) else result
                for result, (name, script_keys, args) in zip(
                    results,
                    [("leave_idle", leave_keys, [self.broker_id]),
                     ("fetch", self._fetch_keys(queue_name), [count, current_millis(), self.broker_id])],
                    strict=False,
                )
            ]  # fmt: skip
        handed, *fetched = results
        taken: list[Fetched] = []
        if isinstance(handed, list):
            taken.extend(Fetched(None, data) for data in handed)
        if fetched and isinstance(fetched[0], list):
            taken.extend(_fetched(fetched[0]))
        failure = next((result for result in results if isinstance(result, Exception)), None)
        if failure is not None:
            self.requeue_fetched(queue_name, taken)
            raise failure
        return taken

    def requeue_fetched(self, queue_name: str, entries: list[Fetched]) -> None:
        """Put entries this process holds (in its acks set) back on their queue. A handed-over entry
        carries its Redis id in its body; one that cannot be decoded is skipped (logged, never with
        the body: arguments may hold secrets), and recovery finds it in the acks set."""
        redis_ids = []
        for redis_id, data, _ in entries:
            if redis_id is None:
                try:
                    redis_id = Message.decode(data).options["redis_message_id"]
                except Exception:
                    logger.warning(
                        "An undecodable entry (%d bytes) on %s was not requeued.", len(data or b""), queue_name
                    )
                    continue
            redis_ids.append(redis_id)
        if redis_ids:
            self.do_requeue(queue_name, *redis_ids)

    def forget_redelivery(self, redis_id: str) -> None:
        """The redelivered message was checked (see RecordedAckConsumer): drop its note."""
        self.client.hdel(keys.redelivered(self.namespace), redis_id)

    def claim_unique(self, unique_key: str, job_id: str, ttl_seconds: int, finished_holder: str = "") -> str | None:
        """Make ``job_id`` the holder of ``unique_key``; the holder's id instead when another job
        holds it (``finished_holder``: a holder the caller knows has finished, taken over)."""
        holder = self.lua.run(
            "claim_unique", [keys.unique(self.namespace, unique_key)], [job_id, ttl_seconds, finished_holder]
        )
        return holder.decode() if isinstance(holder, bytes) else holder or None

    def release_unique(self, unique_key: str, job_id: str) -> None:
        """Free ``unique_key`` if ``job_id`` still holds it (its job finished)."""
        self.lua.run("release_unique", [keys.unique(self.namespace, unique_key)], [job_id])

    def pause(self, queue_name: str, note: str) -> None:
        """Consumers of the queue fetch nothing until ``resume`` (fetch.lua); enqueue goes on."""
        self.client.set(keys.paused(self.namespace, q_name(queue_name)), note)

    def resume(self, queue_name: str) -> bool:
        """Undo ``pause`` and wake the queue's idle consumers; False when it was not paused."""
        queue_name = q_name(queue_name)
        pipeline = self.client.pipeline(transaction=False)
        pipeline.delete(keys.paused(self.namespace, queue_name))
        pipeline.lpush(self.wake_key(queue_name), *([1] * WAKE_TOKENS))
        pipeline.ltrim(self.wake_key(queue_name), 0, WAKE_TOKENS - 1)
        return bool(pipeline.execute()[0])

    def cancel(self, queue_name: str, redis_id: str) -> str:
        """Take a waiting message out so that it never runs (see cancel.lua): ``removed``, ``noted``
        (delayed in a worker: dropped when due), ``held`` (a worker fetched it) or ``absent``."""
        namespace, queue_name = self.namespace, q_name(queue_name)
        outcome = self.lua.run(
            "cancel",
            [
                keys.queue(namespace, queue_name), keys.queue_messages(namespace, queue_name),
                keys.queue_low(namespace, queue_name), keys.queue_priorities(namespace, queue_name),
                keys.delay_queue(namespace, queue_name), keys.delay_queue_messages(namespace, queue_name),
                keys.cancelled(namespace),
            ],
            [redis_id],
        )  # fmt: skip
        return outcome.decode() if isinstance(outcome, bytes) else outcome

    def bury(self, queue_name: str, redis_id: str, data: bytes | None) -> None:
        """Move an entry this process fetched, as it is, to the dead letters (see bury.lua)."""
        namespace, canonical = self.namespace, q_name(queue_name)
        self.lua.run(
            "bury",
            [
                keys.acks(namespace, self.broker_id, queue_name), keys.queue_messages(namespace, queue_name),
                keys.dead_letters(namespace, canonical), keys.dead_letter_messages(namespace, canonical),
                keys.queue_priorities(namespace, queue_name),
            ],
            [redis_id, current_millis(), data or b""],
        )  # fmt: skip

    def _dispatch_args(self, command: str, queue_name: str, *args: Any) -> list[Any]:
        """The arguments of dramatiq's dispatch script for ``command`` (as its ``do_*`` methods pass them)."""
        return [
            command, current_millis(), queue_name, self.broker_id, self.heartbeat_timeout, self.dead_message_ttl,
            self._should_do_maintenance(command), self._max_unpack_size(), *args,
        ]  # fmt: skip

    def _event_values(self, events: list[dict[str, str]], max_length: int) -> list[Any]:
        values: list[Any] = [max_length]
        for fields in events:
            values.extend(fields[name] for name in EVENT_FIELDS)
        return values

    def publish_events(self, events: list[dict[str, str]], max_length: int) -> None:
        """Append lifecycle events to the namespace's capped stream, in order, in one call."""
        stream = keys.events(self.namespace)
        for start in range(0, len(events), _EVENTS_PER_CALL):
            self.lua.run(
                "xadd_many", [stream], self._event_values(events[start : start + _EVENTS_PER_CALL], max_length)
            )

    def count_finished(self, counts: dict[tuple[int, str], int]) -> None:
        """Add finished-job counts to their per-minute counters (the dashboard chart), in one round-trip."""
        pipeline = self.client.pipeline(transaction=False)
        for (minute, series), count in counts.items():
            key = keys.minute_counts(self.namespace, minute)
            pipeline.hincrby(key, series, count)
            pipeline.expire(key, MINUTE_COUNTS_TTL_SECONDS)
        pipeline.execute()

    def enqueue(self, message: Message, *, delay: int | None = None, event: dict[str, str] | None = None) -> Message:
        """dramatiq's enqueue, in one round-trip with:
        - a token on the queue's wake-up list, so an idle consumer fetches at once;
        - with ``event``, the lifecycle event, written first;
        - with a ``queue_priority`` option, a place by priority (once due, for a delayed message):
          above 0, ahead of every waiting message of lower priority; below 0, on the queue's
          low-priority list, which consumers take from once the queue is empty. 0 is arrival order."""
        priority = message.options.get(PRIORITY_OPTION, 0)
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": redis_message_id(message)})
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        self.emit_before("enqueue", message, delay)
        redis_id, now = message.options["redis_message_id"], current_millis()
        if delay is None and priority == 0:
            self._enqueue_ready(queue_name, redis_id, message.encode(), now, event)
            self.emit_after("enqueue", message, delay)
            return message
        for attempt in (1, 2):
            # EVALSHA directly: a pipeline given Script objects asks SCRIPT EXISTS on every execute.
            pipeline = self.client.pipeline(transaction=False)
            if event is not None:
                values = self._event_values([event], get_task_config().events_max_length)
                pipeline.evalsha(self.lua.sha("xadd_many"), 1, keys.events(self.namespace), *values)
            if priority != 0 and delay is None:
                queue_keys = [
                    (keys.queue if priority > 0 else keys.queue_low)(self.namespace, queue_name),
                    keys.queue_messages(self.namespace, queue_name),
                    keys.queue_priorities(self.namespace, queue_name),
                ]
                pipeline.evalsha(
                    self.lua.sha("enqueue_by_priority"), 5, *queue_keys, keys.heartbeats(self.namespace),
                    keys.cancelled(self.namespace), redis_id, message.encode(), priority, now, self.broker_id,
                )  # fmt: skip
            else:
                dispatch_args = self._dispatch_args("enqueue", queue_name, redis_id, message.encode())
                pipeline.evalsha(self.scripts["dispatch"].sha, 1, self.namespace, *dispatch_args)
            if delay is None:  # wake an idle consumer; a few tokens are enough to wake them all
                pipeline.lpush(self.wake_key(queue_name), 1)
                pipeline.ltrim(self.wake_key(queue_name), 0, WAKE_TOKENS - 1)
            results = pipeline.execute(raise_on_error=False)
            if attempt == 1 and self.lua.pipeline_failed(results):
                # Redis forgot the scripts: load dramatiq's again too, and send once more.
                self.scripts["dispatch"].sha = self.client.script_load(self.scripts["dispatch"].script)
                continue
            for result in results:
                if isinstance(result, Exception):
                    raise result
            break
        self.emit_after("enqueue", message, delay)
        return message

    def _enqueue_ready(self, queue_name: str, redis_id: str, data: bytes, now: int, event: dict | None) -> None:
        """The common case in one script call: event (if any), message, heartbeat, and either the
        hand-over to an idle consumer or the queue and a wake-up token."""
        values = self._event_values([event], get_task_config().events_max_length) if event else [0]
        namespace = self.namespace
        script_keys = [
            keys.events(namespace), keys.queue(namespace, queue_name), keys.queue_messages(namespace, queue_name),
            keys.heartbeats(namespace), self.wake_key(queue_name), keys.idle_consumers(namespace, queue_name),
            keys.cancelled(namespace), keys.paused(namespace, queue_name),
        ]  # fmt: skip
        handover = self._handover_keys.get(queue_name)
        if handover is None:
            handover = self._handover_keys[queue_name] = (
                *keys.around_broker_id(keys.acks, namespace, queue_name),
                *keys.around_broker_id(keys.inbox, namespace, queue_name),
            )
        arguments = [redis_id, data, now, self.broker_id, WAKE_TOKENS, *handover, *values]
        self.lua.run("enqueue_ready", script_keys, arguments)

    def settle_messages(self, queue_name: str, command: str, messages: list[Any]) -> None:
        """Ack or nack ``messages`` (records committed), then emit ``after_ack``/``after_nack`` for
        each: a middleware told a message is acknowledged can rely on it."""
        self.settle_many(queue_name, command, [message.options["redis_message_id"] for message in messages])
        for message in messages:
            self.emit_after(command, message)

    def defer_settle_hook(self) -> None:
        """The next ``after_ack``/``after_nack`` this thread emits is early: the ack waits for the
        job record (see RecordedAckConsumer); settle_messages emits it once it is done."""
        self._deferred_hooks.pending = True

    def settle_many(self, queue_name: str, command: str, redis_message_ids: list[str]) -> None:
        """Ack or nack many messages of one queue in one script call (dramatiq's ack/nack, batched)."""
        canonical = q_name(queue_name)
        self.lua.run(
            "settle_many",
            [
                keys.acks(self.namespace, self.broker_id, queue_name),
                keys.queue_messages(self.namespace, queue_name),
                keys.dead_letters(self.namespace, canonical),
                keys.dead_letter_messages(self.namespace, canonical),
                keys.heartbeats(self.namespace),
                keys.queue_priorities(self.namespace, queue_name),
            ],
            [command, current_millis(), self.broker_id, *redis_message_ids],
        )

    def move_to_dead_letters(self, broker_id: str, queue_name: str, redis_message_id: str) -> bool:
        """Move a message held by (dead) broker process ``broker_id``, or already put back on its
        queue, to the dead letters, atomically; False when it is gone."""
        queue = q_name(queue_name)
        namespace = self.namespace
        moved = self.lua.run(
            "move_to_dead_letters",
            [
                keys.acks(namespace, broker_id, queue), keys.queue(namespace, queue),
                keys.queue_messages(namespace, queue), keys.dead_letters(namespace, queue),
                keys.dead_letter_messages(namespace, queue),
            ],
            [redis_message_id, current_millis()],
        )  # fmt: skip
        return bool(moved)

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
        self.lua = Scripts(self.client)
        self._deferred_hooks = threading.local()
        self._handover_keys: dict[str, tuple[str, str, str, str]] = {}

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
        if signal in _SETTLE_SIGNALS and getattr(self._deferred_hooks, "pending", False):
            self._deferred_hooks.pending = False
            return
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
        harmless command that carries it. Each message put back is noted as redelivered first.
        """
        before, after = keys.around_broker_id(keys.acks, self.namespace, queue_name)
        self.lua.run(
            "mark_redelivered",
            [keys.heartbeats(self.namespace), keys.redelivered(self.namespace)],
            [current_millis(), self.heartbeat_timeout, before, after, self.dead_message_ttl],
        )
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
