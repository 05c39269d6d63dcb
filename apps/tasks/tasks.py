"""Built-in actors of the task layer."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from django.utils import timezone

from .backends import TaskContext, normalize_json, resolve_task, task_backends
from .config import get_task_config
from .decorators import task
from .logging import current_job
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
def run_django_task(module_path: str, args: list, kwargs: dict, takes_context: bool, backend_alias: str) -> Any:
    """Run a Django Tasks framework task (see apps.tasks.backends); its return value is recorded.

    Not retried: the framework has no retry policy, so a failure is final (status FAILED).
    """
    task = resolve_task(module_path)
    if takes_context:
        backend = task_backends[backend_alias]
        job = current_job.get()
        result = backend.running_result(job.job_id if job else "", task, args, kwargs, timezone.now())
        return _json_safe(task.call(TaskContext(task_result=result), *args, **kwargs))
    return _json_safe(task.call(*args, **kwargs))


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
