"""Plain Django Tasks framework code: nothing here knows about Dramatiq."""

import time

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

from apps.tasks.broker import get_redis


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def wait_for_go(key: str) -> str:
    """Stay running until the test sets ``key`` (bounded), so the RUNNING status can be seen."""
    deadline = time.monotonic() + 20
    while not get_redis().exists(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} never set")
        time.sleep(0.01)
    return "went"


@task
def explode(reason: str) -> None:
    raise RuntimeError(reason)


@task
async def double_async(value: int) -> int:
    return value * 2


@task(queue_name="low")
def record_order(key: str, label: str) -> None:
    get_redis().rpush(key, label)


@task(takes_context=True)
def which_attempt(context) -> dict:
    result = context.task_result
    return {
        "attempt": context.attempt,
        "id": result.id,
        "worker_ids": result.worker_ids,
        "enqueued_at": result.enqueued_at.isoformat() if result.enqueued_at else None,
        "priority": result.task.priority,
    }


@task
def echo(value):
    return value
