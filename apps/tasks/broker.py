"""The broker, and a Redis client on the broker's database."""

from __future__ import annotations

from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import current_millis


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

    def settle_many(self, queue_name: str, command: str, redis_message_ids: list[str]) -> None:
        """Ack or nack many messages of one queue in one pipelined round-trip."""
        dispatch = self.scripts["dispatch"]
        pipeline = self.client.pipeline(transaction=False)
        timestamp = current_millis()
        unpack = self._max_unpack_size()
        for redis_message_id in redis_message_ids:
            args = [command, timestamp, queue_name, self.broker_id, self.heartbeat_timeout, self.dead_message_ttl]
            dispatch(args=[*args, 0, unpack, redis_message_id], keys=[self.namespace], client=pipeline)
        pipeline.execute()

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
