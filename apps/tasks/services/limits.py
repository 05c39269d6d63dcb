"""Per-actor limits, declared on ``@task``: at most ``concurrency`` jobs of the actor running at once
in all workers, and at most ``rate_limit`` = (count, seconds) started per period.

Built on dramatiq's own rate limiters with their Redis backend, on the broker's client:
``ConcurrentRateLimiter`` for concurrency, ``WindowRateLimiter`` (a sliding window of one-second
buckets) for periods up to a minute and ``BucketRateLimiter`` (fixed buckets, cheaper) beyond.
``middleware.limits`` takes the slots before a job starts and defers a job that finds none.

A concurrency slot is given back when the job ends, however it ends. A worker process killed
while running one cannot: the live workers' recovery gives back the slots of the dead processes
on their host (``release_slot``); otherwise a lost slot lives until its key expires, one time
limit after the actor's last start or end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import dramatiq
from dramatiq.rate_limits import BucketRateLimiter, ConcurrentRateLimiter, RateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from apps.tasks import keys
from apps.tasks.broker import get_redis

#: Sliding windows sum one key per second: past this many seconds, fixed buckets instead.
MAX_WINDOW_SECONDS = 60
#: A concurrency slot outlives the actor's time limit by this much (then it is lost, see above).
SLOT_TTL_MARGIN_MS = 60_000


@dataclass(frozen=True)
class ActorLimits:
    actor_name: str
    concurrency: int | None
    rate_limit: tuple[int, int] | None  # (count, seconds)
    limiters: tuple[RateLimiter, ...]  # concurrency first: a slot given back costs nothing

    @property
    def concurrent(self) -> ConcurrentRateLimiter | None:
        return next((limiter for limiter in self.limiters if isinstance(limiter, ConcurrentRateLimiter)), None)


def declared(actor: dramatiq.Actor) -> tuple[int | None, tuple[int, int] | None]:
    return actor.options.get("concurrency"), actor.options.get("rate_limit")


def limits_for(broker: dramatiq.Broker, actor_name: str) -> ActorLimits | None:
    """The actor's limits and their limiters, or None when it declares none (cached per actor)."""
    return _limits_for(broker, actor_name)


@cache
def _limits_for(broker: dramatiq.Broker, actor_name: str) -> ActorLimits | None:
    actor = broker.get_actor(actor_name)
    concurrency, rate_limit = declared(actor)
    if concurrency is None and rate_limit is None:
        return None
    backend = RedisBackend(client=broker.client)
    limiters: list[RateLimiter] = []
    if concurrency is not None:
        time_limit = actor.options.get("time_limit") or 600_000
        key = keys.actor_limit(broker.namespace, actor_name, "concurrency")
        limiters.append(ConcurrentRateLimiter(backend, key, limit=concurrency, ttl=time_limit + SLOT_TTL_MARGIN_MS))
    if rate_limit is not None:
        count, seconds = rate_limit
        key = keys.actor_limit(broker.namespace, actor_name, "rate")
        if seconds <= MAX_WINDOW_SECONDS:
            limiters.append(WindowRateLimiter(backend, key, limit=count, window=seconds))
        else:
            limiters.append(BucketRateLimiter(backend, key, limit=count, bucket=seconds * 1000))
    return ActorLimits(actor_name, concurrency, rate_limit, tuple(limiters))


def release_slot(broker: dramatiq.Broker, actor_name: str) -> bool:
    """Give back a concurrency slot of the actor taken by a job that will never end (its process
    died); False when the actor has no concurrency limit."""
    limits = limits_for(broker, actor_name) if actor_name in broker.actors else None
    if limits is None or limits.concurrent is None:
        return False
    limiter = limits.concurrent
    limiter.backend.decr(limiter.key, 1, minimum=0, ttl=limiter.ttl)
    return True


def actor_usage(broker: dramatiq.Broker, actor_name: str) -> dict[str, Any] | None:
    """The actor's limits and how many of its jobs run now (concurrency slots taken; None without a
    concurrency limit), or None when it declares no limit or is not declared in this process."""
    limits = limits_for(broker, actor_name) if actor_name in broker.actors else None
    if limits is None:
        return None
    running = None
    if limits.concurrent is not None:
        running = int(get_redis().get(limits.concurrent.key) or 0)
    return {
        "actor": actor_name,
        "concurrency": limits.concurrency,
        "running": running,
        "rate_limit": list(limits.rate_limit) if limits.rate_limit else None,
    }


def usage(broker: dramatiq.Broker) -> list[dict[str, Any]]:
    """Every limited actor, by name: its limits, and how many of its jobs run now (see actor_usage)."""
    rows = (actor_usage(broker, actor_name) for actor_name in sorted(broker.get_declared_actors()))
    return [row for row in rows if row is not None]
