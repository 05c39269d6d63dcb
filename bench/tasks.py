"""The no-op actor of the benchmarks, through the full stack (discovered by rundramatiq)."""

import dramatiq

from apps.tasks.broker import get_redis


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(counter_key: str) -> None:
    get_redis().incr(counter_key)
