"""The benchmark actors, discovered by ``rundramatiq`` for the full stack and for django-dramatiq.

Both use whatever broker Django configured (the project's, or a plain dramatiq RedisBroker), and
write to that broker's Redis database, where the harness reads counters and time stamps.
"""

import time

import dramatiq


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(counter_key: str) -> None:
    """The no-op of the drain benchmark: one INCR, so the harness can count completions."""
    dramatiq.get_broker().client.incr(counter_key)


@dramatiq.actor(queue_name="bench", max_retries=0)
def stamp(key: str) -> None:
    """Pick-up latency: push the wall-clock time at which the task body started."""
    started = time.time()
    dramatiq.get_broker().client.rpush(key, repr(started))
