"""The broker, and a Redis client on the broker's database."""

from __future__ import annotations

from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker


class RedisBroker(DramatiqRedisBroker):
    """dramatiq's RedisBroker, with connection options applied to a URL's pool.

    dramatiq builds its pool with ``ConnectionPool.from_url(url)`` and drops every
    other connection parameter when a URL is given, so pool size, timeouts and
    keepalive would silently not apply. Here they do.
    """

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
