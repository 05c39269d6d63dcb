"""Actors used by the tests; discovered like any app's tasks module."""

import dramatiq

from apps.tasks.broker import get_redis


@dramatiq.actor(queue_name="default", max_retries=0)
def record_effect(key: str, value: str) -> None:
    get_redis().rpush(key, value)
