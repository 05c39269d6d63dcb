"""Plain Django Tasks framework code: nothing here knows about Dramatiq."""

import json
import sys
import time

try:
    from django.tasks import TaskContext, task
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:
    from django_tasks import TaskContext, task
    from django_tasks.signals import task_enqueued, task_finished, task_started

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


# The tasks of the framework's own test suites (django-tasks 0.12 tests/tasks.py, django-tasks-db
# tests/tasks.py), for tests/conformance.


@task
def noop_task(*args, **kwargs) -> None:
    return None


@task
async def noop_task_async(*args, **kwargs) -> None:
    return None


@task
def calculate_meaning_of_life() -> int:
    return 42


@task
def failing_task_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task
def failing_task_system_exit() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task
def failing_task_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("This task failed due to KeyboardInterrupt")


@task
def exit_task() -> None:
    exit(1)


@task
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task
def complex_return_value():
    return lambda: True  # neither JSON nor picklable


@task
def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


@task(takes_context=True)
def get_task_id(context) -> str:
    return context.task_result.id


@task(takes_context=True)
def check_context(context, attempt: int) -> None:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt


@task
def echo_arguments(*args, **kwargs) -> list:
    return [args, kwargs]


def not_a_task(key: str) -> None:
    """A plain function: a job naming it must fail without running it."""
    get_redis().set(key, "ran")


@task
def signal_probe(key: str, fail: bool = False) -> None:
    """The receivers below note every framework signal about this task in the Redis list ``key``."""
    if fail:
        raise RuntimeError("probe failed")


def _note_signal(name: str):
    def receiver(sender, task_result, **kwargs) -> None:
        if task_result.task.func is not signal_probe.func:
            return
        # sys.exc_info(): Django 6's receiver logs the exception of a failed task from there.
        failure = type(sys.exc_info()[1]).__name__ if sys.exc_info()[1] else ""
        note = [name, sender.__name__, task_result.id, str(task_result.status), failure]
        get_redis().rpush(task_result.args[0], json.dumps(note))

    receiver.__name__ = f"note_{name}"
    return receiver


_receivers = {name: _note_signal(name) for name in ("enqueued", "started", "finished")}
task_enqueued.connect(_receivers["enqueued"], weak=False, dispatch_uid="framework_tasks.enqueued")
task_started.connect(_receivers["started"], weak=False, dispatch_uid="framework_tasks.started")
task_finished.connect(_receivers["finished"], weak=False, dispatch_uid="framework_tasks.finished")
