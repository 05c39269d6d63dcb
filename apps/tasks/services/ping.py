"""Prove a queue is served: send the built-in ``ping`` actor a token and wait for its pong in Redis."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import dramatiq

from apps.tasks import keys
from apps.tasks.broker import get_redis
from apps.tasks.enqueue import resolve_actor

PING_ACTOR = "ping"
PONG_TTL_SECONDS = 300
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Ping:
    token: str
    message_id: str
    queue_name: str
    sent_at: float  # time.monotonic()


def _pong_key(token: str) -> str:
    return keys.ping_result(dramatiq.get_broker().namespace, token)


def send_ping() -> Ping:
    """Send one ping message on the ping actor's queue."""
    token = uuid.uuid4().hex
    message = resolve_actor(PING_ACTOR).send(token)
    return Ping(token, message.message_id, message.queue_name, time.monotonic())


def record_pong(token: str) -> None:
    """What the ping actor does: leave the token's pong for the sender to find."""
    get_redis().set(_pong_key(token), "pong", ex=PONG_TTL_SECONDS)


def wait_for_pong(ping: Ping, timeout: float) -> float | None:
    """Milliseconds from send to pong, or None when no worker answered within ``timeout`` seconds."""
    client, key = get_redis(), _pong_key(ping.token)
    while client.get(key) is None:
        if time.monotonic() - ping.sent_at > timeout:
            return None
        time.sleep(_POLL_SECONDS)
    return (time.monotonic() - ping.sent_at) * 1000


def redis_latency_ms() -> float:
    """One PING round-trip to the broker's Redis, in milliseconds (raises when Redis is down)."""
    started = time.perf_counter()
    get_redis().ping()
    return round((time.perf_counter() - started) * 1000, 2)
