"""Built-in actors of the task layer."""

from __future__ import annotations

import dramatiq

from . import keys
from .broker import get_redis

PING_RESULT_TTL_SECONDS = 300


@dramatiq.actor(queue_name="default", max_retries=0)
def ping(token: str) -> None:
    """Record that a worker ran this message, so a caller can prove the queue is served."""
    broker = dramatiq.get_broker()
    get_redis().set(keys.ping_result(broker.namespace, token), "pong", ex=PING_RESULT_TTL_SECONDS)
