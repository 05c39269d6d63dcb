"""Built-in actors of the task layer."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from django.utils import timezone

from .backends import (
    TaskContext,
    TaskError,
    TaskResultStatus,
    normalize_json,
    task_backends,
    task_finished,
    task_started,
)
from .config import get_task_config
from .decorators import task
from .logging import current_job
from .records import worker_label
from .records.transitions import from_millis
from .services.ping import record_pong
from .services.records import purge_old_records

logger = logging.getLogger(__name__)

# Workers consume every configured queue, also those no actor of theirs declares yet:
# Django Tasks choose their queue per call (see run_django_task).
for _queue in get_task_config().dramatiq.queues:
    dramatiq.get_broker().declare_queue(_queue)


@dramatiq.actor(queue_name="default", max_retries=0)
def ping(token: str) -> None:
    """Record that a worker ran this message, so a caller can prove the queue is served."""
    record_pong(token)


@dramatiq.actor(queue_name="default", max_retries=0)
def run_django_task(
    module_path: str, args: list, kwargs: dict, takes_context: bool, backend_alias: str, options: dict | None = None
) -> Any:
    """Run a Django Tasks framework task (see apps.tasks.backends); its return value is recorded.

    Sends ``task_started`` and ``task_finished`` as the framework's own workers do. Not retried: the
    framework has no retry policy, so a failure is final (status FAILED).
    """
    backend = task_backends[backend_alias]
    job = current_job.get()
    task = backend.task_as_enqueued(module_path, job.queue if job else "default", options)
    started_at = timezone.now()
    enqueued_at = from_millis(job.enqueued_ms) if job and job.enqueued_ms else None
    result = backend.running_result(
        job.job_id if job else "", task, args, kwargs, started_at,
        enqueued_at=enqueued_at, worker_ids=[worker_label()] * (job.attempt if job else 1),
    )  # fmt: skip
    task_started.send(type(backend), task_result=result)
    try:
        value = (
            task.call(TaskContext(task_result=result), *args, **kwargs) if takes_context else task.call(*args, **kwargs)
        )
        value = _json_safe(value)
    except BaseException as exc:
        error = TaskError(exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}", traceback=repr(exc))
        _finish(result, TaskResultStatus.FAILED, errors=[error])
        task_finished.send(type(backend), task_result=result)
        raise
    _finish(result, TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(type(backend), task_result=result)
    return value


def _finish(result: Any, status: Any, errors: list | None = None) -> None:
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    if errors:
        result.errors.extend(errors)


def _json_safe(value: Any) -> Any:
    """What the framework stores: the value as JSON would give it back (tuples become lists)."""
    return normalize_json(value)


@task(queue_name="low", max_retries=3)
def purge_job_records_task(days: int | None = None) -> int:
    """Retention, sent by the scheduler (TASK_CONFIG.schedules): delete finished job records older
    than ``days`` (default ``record_retention_days``); returns how many went."""
    days = get_task_config().record_retention_days if days is None else days
    deleted = purge_old_records(days)
    logger.info("Purged %d finished job records older than %d days.", deleted, days)
    return deleted
