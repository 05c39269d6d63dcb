"""A backend for Django's Tasks framework that runs tasks on our Dramatiq workers.

    TASKS = {"default": {"BACKEND": "apps.tasks.backends.DramatiqBackend"}}

Works with ``django.tasks`` (Django >= 6.0) and with the ``django-tasks`` backport (Django 5.2):
both expose the same classes; only the import path and two exception names differ.
``task.enqueue()`` goes through our enqueue helper (record first, sent on commit inside a
transaction); ``get_result()`` reads the job record. Every framework task runs through one
dramatiq actor, ``apps.tasks.tasks.run_django_task``, on the task's queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.tasks.broker import PRIORITY_OPTION
from apps.tasks.config import get_task_config
from apps.tasks.enqueue import enqueue
from apps.tasks.records import payload
from apps.tasks.services.records import FRAMEWORK_RUNNER

try:  # Django >= 6.0
    from django.tasks import TaskResultStatus, task_backends
    from django.tasks import exceptions as task_exceptions
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django 5.2 with the django-tasks backport
    from django_tasks import TaskResultStatus, task_backends
    from django_tasks import exceptions as task_exceptions
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskContext, TaskError, TaskResult
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

# Django 6.0 calls it InvalidTask, the backport InvalidTaskError.
InvalidTaskError = getattr(task_exceptions, "InvalidTask", None) or task_exceptions.InvalidTaskError
ResultDoesNotExist = task_exceptions.TaskResultDoesNotExist
#: ``task.get_result(id)`` of a result that belongs to another task.
ResultMismatch = task_exceptions.TaskResultMismatch

RUNNER_ACTOR = FRAMEWORK_RUNNER

#: Our record statuses as the framework's.
STATUS_MAP = {
    "pending": TaskResultStatus.READY,
    "retrying": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "dead_letter": TaskResultStatus.FAILED,
    "skipped": TaskResultStatus.FAILED,
    # The framework has no cancelled state: a job an operator cancelled or aborted did not succeed.
    "cancelled": TaskResultStatus.FAILED,
}

__all__ = [
    "DramatiqBackend",
    "InvalidTaskError",
    "ResultDoesNotExist",
    "ResultMismatch",
    "Task",
    "TaskContext",
    "TaskResult",
    "TaskResultStatus",
    "normalize_json",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]


def resolve_task(module_path: str) -> Task:
    """The Task object a module path names (what ``@task`` left at module level)."""
    target = import_string(module_path)
    if not isinstance(target, Task):
        raise InvalidTaskError(f"{module_path!r} is not a task (decorate it with @task)")
    return target


class DramatiqBackend(BaseTaskBackend):
    """Runs Django Tasks on Dramatiq. ``QUEUES`` defaults to the queues of ``TASK_CONFIG``.

    Priorities order the whole range (-100 to 100) as the database backend does: higher first, equal
    priorities in arrival order (see RedisBroker.enqueue).
    Failures are not retried (the framework has no retry policy): a failing task ends FAILED.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        self.configured_queues = tuple(get_task_config().dramatiq.queues)
        if "QUEUES" not in params:
            self.queues = set(self.configured_queues)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        unknown = sorted(set(self.queues) - set(self.configured_queues))
        if unknown:
            yield checks.Error(
                f"{self.alias!r} task backend lists queues that TASK_CONFIG does not configure: {', '.join(unknown)}",
                hint=f"Configured queues: {', '.join(self.configured_queues)}; add yours to DramatiqConfig.queues.",
                obj=self.alias,
                id="tasks.E001",
            )
        if not get_task_config().enabled:
            yield checks.Warning(
                f"{self.alias!r} task backend: TASK_CONFIG.enabled is False, so enqueued tasks never run.",
                obj=self.alias,
                id="tasks.W001",
            )

    def validate_task(self, task: Task) -> None:
        """The framework's checks, then ours: with ``QUEUES: []`` ("any queue") a task may name any
        queue TASK_CONFIG configures (a worker consumes only queues it knows), refused the
        framework's way (InvalidTask) rather than at send time."""
        super().validate_task(task)
        if task.queue_name not in self.configured_queues:
            raise InvalidTaskError(
                f"Queue {task.queue_name!r} is not configured in TASK_CONFIG (no worker consumes it): "
                f"configured queues are {', '.join(self.configured_queues)}"
            )

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Validate, write the record, send (on commit inside a transaction), signal ``task_enqueued``.

        Arguments are normalized as the framework's TaskResult does (tuples become lists, bytes str);
        what it cannot carry raises its TypeError ("Unsupported type: ...") before anything is written."""
        from apps.tasks.models import JobRecord

        self.validate_task(task)
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        delay_ms = None
        if task.run_after is not None:
            delay_ms = int((task.run_after - timezone.now()).total_seconds() * 1000)
            # Due already: straight to its place by priority, not through the delay queue, where it
            # would wait for a worker to move it while later, lower-priority tasks run.
            delay_ms = delay_ms if delay_ms > 0 else None
        options = {"priority": task.priority, "run_after": task.run_after.isoformat() if task.run_after else None}
        job_id = enqueue(
            RUNNER_ACTOR,
            args=(task.module_path, args, kwargs, task.takes_context, self.alias, options),
            queue_name=task.queue_name,
            delay=delay_ms,
            **({PRIORITY_OPTION: task.priority} if task.priority else {}),
        )
        enqueued_at = JobRecord.objects.filter(pk=job_id).values_list("enqueued_at", flat=True).first()
        result = TaskResult(
            task=task,
            id=job_id,
            status=TaskResultStatus.READY,
            enqueued_at=enqueued_at or timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        from apps.tasks.models import JobRecord

        record = JobRecord.objects.filter(message_id=result_id, actor_name=RUNNER_ACTOR).first()
        if record is None:
            raise ResultDoesNotExist(result_id)
        try:  # the exact arguments: the record's display copy may be masked or cut
            runner_args, _ = payload.exact_arguments(record)
        except LookupError:
            raise ResultDoesNotExist(result_id) from None
        if len(runner_args) < 3:
            raise ResultDoesNotExist(result_id)
        module_path, args, kwargs = runner_args[0], runner_args[1], runner_args[2]
        task = self.task_as_enqueued(module_path, record.queue_name, runner_args[5] if len(runner_args) > 5 else None)
        status = STATUS_MAP[record.status]
        errors = []
        if record.error_type and status == TaskResultStatus.FAILED:
            errors.append(TaskError(exception_class_path=record.error_type, traceback=record.traceback))
        result = TaskResult(
            task=task,
            id=record.message_id,
            status=status,
            enqueued_at=record.enqueued_at,
            started_at=record.started_at,
            finished_at=record.finished_at
            if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
            else None,
            last_attempted_at=record.started_at,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=errors,
            worker_ids=[record.worker] * record.attempts if record.worker else [],
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", payload.exact_result(record))
        return result

    def task_as_enqueued(self, module_path: str, queue_name: str, options: dict | None) -> Task:
        """The task with the priority, run_after and queue it was enqueued with (runner's options)."""
        options = options or {}
        run_after = options.get("run_after")
        return resolve_task(module_path).using(
            queue_name=queue_name,
            backend=self.alias,
            priority=options.get("priority"),
            run_after=datetime.fromisoformat(run_after) if run_after else None,
        )

    def running_result(
        self,
        result_id: str,
        task: Task,
        args: list,
        kwargs: dict,
        started_at: datetime,
        *,
        enqueued_at: datetime | None = None,
        worker_ids: list[str] | None = None,
    ) -> TaskResult:
        """The TaskResult a running task sees in its context (its record may not be written yet)."""
        return TaskResult(
            task=task,
            id=result_id,
            status=TaskResultStatus.RUNNING,
            enqueued_at=enqueued_at,
            started_at=started_at,
            finished_at=None,
            last_attempted_at=started_at,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=list(worker_ids or []),
        )
