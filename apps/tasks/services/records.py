"""Queries over job records and the retry action: what the API, admin and CLI share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.tasks.config import configured_queues
from apps.tasks.models import TERMINAL_STATUSES, JobBackend, JobRecord, JobStatus
from apps.tasks.records import payload
from apps.tasks.services import dead_letters

#: The actor that runs every Django Tasks framework task (apps.tasks.tasks); its first argument is
#: the task's module path, which is what people look for.
FRAMEWORK_RUNNER = "run_django_task"
MAX_PAGE_SIZE = 200
#: Pages past this are refused before the database sees an OFFSET it cannot hold (bigint).
MAX_PAGE = 1_000_000


class InvalidFilter(ValueError):
    """A filter value the API refuses (unknown status or queue, bad page)."""


class CannotRetry(RuntimeError):
    pass


#: Callables naming queues other layers record jobs under (apps.workflows: its Temporal task queue).
_record_queue_providers: list[Callable[[], Iterable[str]]] = []


def register_record_queues(provider: Callable[[], Iterable[str]]) -> None:
    """Let another app add queue names job records may carry besides dramatiq's (asked on each use,
    so a provider can follow settings); registered once from an AppConfig.ready()."""
    if provider not in _record_queue_providers:
        _record_queue_providers.append(provider)


def other_record_queues() -> tuple[str, ...]:
    """Queues job records carry that are not dramatiq queues (registered by other apps)."""
    return tuple(name for provider in _record_queue_providers for name in provider())


def record_queues() -> tuple[str, ...]:
    """Every queue a job record may name: the configured dramatiq queues, then the registered ones."""
    configured = configured_queues()
    return configured + tuple(name for name in other_record_queues() if name not in configured)


def filter_records(
    *,
    status: str | None = None,
    queue: str | None = None,
    actor: str | None = None,
    backend: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ordering: str | None = None,
) -> QuerySet[JobRecord]:
    """Records by status, queue, actor, backend, enqueued in [since, until) (ISO 8601), newest
    first unless ``ordering`` is ``enqueued_at``; InvalidFilter names what is wrong."""
    records = JobRecord.objects.all()
    if ordering:
        if ordering not in ORDERINGS:
            raise InvalidFilter(f"unknown ordering {ordering!r}; valid: {', '.join(ORDERINGS)}")
        records = records.order_by(ordering, "message_id" if ordering == "enqueued_at" else "-message_id")
    for name, value, lookup in (("since", since, "enqueued_at__gte"), ("until", until, "enqueued_at__lt")):
        if value:
            records = records.filter(**{lookup: _datetime_param(name, value)})
    if status:
        if status not in JobStatus.values:
            raise InvalidFilter(f"unknown status {status!r}; valid: {', '.join(JobStatus.values)}")
        records = records.filter(status=status)
    if backend:
        if backend not in JobBackend.values:
            raise InvalidFilter(f"unknown backend {backend!r}; valid: {', '.join(JobBackend.values)}")
        records = records.filter(backend=backend)
    if queue:
        if queue not in other_record_queues():
            try:
                dead_letters.check_queue(queue)
            except dead_letters.UnknownQueueError as exc:
                raise InvalidFilter(str(exc)) from None
        records = records.filter(queue_name=queue)
    if actor:
        records = records.filter(actor_name=actor)
    return records if ordering else records.order_by("-enqueued_at")


def page_of(records: QuerySet[JobRecord], page: int, page_size: int) -> tuple[list[JobRecord], bool]:
    """One page and whether another follows; never a COUNT over the table."""
    if not 1 <= page <= MAX_PAGE:
        raise InvalidFilter(f"page must be between 1 and {MAX_PAGE:,}".replace(",", ""))
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidFilter(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    start = (page - 1) * page_size
    rows = list(records[start : start + page_size + 1])
    return rows[:page_size], len(rows) > page_size


#: Orderings the API offers (both use the enqueued_at index).
ORDERINGS = ("-enqueued_at", "enqueued_at")


def _datetime_param(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFilter(f"{name} must be an ISO 8601 date or time (2026-12-04T10:00:00Z), not {value!r}") from None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.get_default_timezone())


def display_actor(record: JobRecord) -> str:
    """The actor a person means: a framework task's own module path, else the actor name."""
    if record.actor_name == FRAMEWORK_RUNNER and isinstance(record.args, list) and record.args:
        return str(record.args[0])
    return record.actor_name


def record_as_dict(record: JobRecord, *, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": record.message_id,
        "backend": record.backend,
        "actor": display_actor(record),
        "queue": record.queue_name,
        "status": record.status,
        "attempts": record.attempts,
        "enqueued_at": _iso(record.enqueued_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "duration_ms": record.duration_ms,
        "worker": record.worker,
        "next_retry_at": _iso(record.next_retry_at) if record.status == JobStatus.RETRYING else None,
        "error_type": record.error_type,
        "error_message": record.error_message,
    }
    if detail:
        data.update(
            args=record.args,
            kwargs=record.kwargs,
            args_complete=record.args_complete,
            result=record.result,
            traceback=record.traceback,
            updated_at=_iso(record.updated_at),
        )
    return data


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def retry_job(message_id: str) -> str:
    """Run a finished job again: requeue its dead letter if the broker still has it, else send
    its stored arguments as a new job. Returns the id of the job that will run."""
    from apps.tasks.enqueue import enqueue

    record = JobRecord.objects.get(message_id=message_id)
    if record.backend != JobBackend.DRAMATIQ:
        raise CannotRetry(f"job {message_id} is a {record.backend} workflow; start it again through the JobRouter")
    if record.status not in TERMINAL_STATUSES:
        raise CannotRetry(f"job {message_id} is {record.status}; only finished jobs can be retried")
    if record.status == JobStatus.DEAD_LETTER:
        try:
            return dead_letters.requeue_dead_letter(message_id, record.queue_name)
        except dead_letters.DeadLetterNotFound:
            pass  # expired or deleted from the broker: send it anew below
    try:
        args, kwargs = payload.exact_arguments(record)
    except LookupError as exc:
        raise CannotRetry(f"job {message_id}'s arguments were masked or truncated in its record and {exc}") from None
    new_id = enqueue(record.actor_name, args=args, kwargs=kwargs)
    JobRecord.objects.filter(message_id=message_id).update(retried_as=new_id)
    return new_id


def retry_jobs(message_ids: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Retry several jobs; returns the new ids and, per refused id, why."""
    retried, refused = [], {}
    for message_id in message_ids:
        try:
            retried.append(retry_job(message_id))
        except (CannotRetry, JobRecord.DoesNotExist, LookupError) as exc:
            refused[message_id] = str(exc)
    return retried, refused


def purge_old_records(days: int, *, batch_size: int = 10_000) -> int:
    """Delete finished records last changed more than ``days`` ago, in batches; returns how many."""
    cutoff = timezone.now() - timedelta(days=days)
    old = JobRecord.objects.filter(updated_at__lt=cutoff, status__in=TERMINAL_STATUSES)
    deleted = 0
    while True:
        ids = list(old.values_list("message_id", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += JobRecord.objects.filter(message_id__in=ids).delete()[0]


def status_counts(since_minutes: int) -> dict[str, int]:
    """How many jobs reached each status in the last ``since_minutes`` minutes (index on updated_at)."""
    from django.db.models import Count

    since = timezone.now() - timedelta(minutes=since_minutes)
    rows = JobRecord.objects.filter(updated_at__gte=since).values("status").annotate(count=Count("message_id"))
    return {row["status"]: row["count"] for row in rows}


def throughput(since_minutes: int) -> dict[str, Any]:
    """Completed and failed jobs per minute over a window, and the failure rate."""
    counts = status_counts(since_minutes)
    completed = counts.get(JobStatus.COMPLETED, 0)
    failed = sum(counts.get(status, 0) for status in (JobStatus.FAILED, JobStatus.DEAD_LETTER))
    finished = completed + failed
    return {
        "window_minutes": since_minutes,
        "completed": completed,
        "failed": failed,
        "completed_per_minute": round(completed / since_minutes, 2),
        "failed_per_minute": round(failed / since_minutes, 2),
        "failure_rate": round(failed / finished, 4) if finished else 0.0,
        "by_status": counts,
    }
