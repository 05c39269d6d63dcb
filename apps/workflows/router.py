"""One entry point for background work: ``JobRouter().enqueue(job)`` sends it to Dramatiq or Temporal.

Short, single-step jobs go to Dramatiq (cheap, high volume). A job that declares it runs longer
than ``LONG_JOB_SECONDS``, has more than one step or needs compensation goes to Temporal (durable,
resumable, compensating); so does a job naming a workflow, which runs nowhere else. A dramatiq actor
sent to Temporal runs as ``RunActorWorkflow``. Either way the returned id is a job record's id, so
the status API, the admin and ``manage.py tasks`` show both; for Temporal it is also the workflow id.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction

from apps.tasks.models import JobBackend

logger = logging.getLogger(__name__)

#: A job expected to run longer than this belongs on Temporal.
LONG_JOB_SECONDS = 30.0


class RoutingError(ValueError):
    """The job cannot run where its characteristics send it (unknown name, Temporal disabled, ...)."""


@dataclass(frozen=True)
class Job:
    """A piece of background work and what its caller knows about it.

    ``name`` is a dramatiq actor's or a Temporal workflow's name. ``expected_duration`` is in
    seconds (or a timedelta). Workflows take positional ``args`` only. ``job_id`` (optional) makes
    the enqueue idempotent on Temporal: a second start of a running id is refused.
    """

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    expected_duration: float | timedelta = 0.0
    steps: int = 1
    needs_compensation: bool = False
    job_id: str | None = None

    @property
    def expected_seconds(self) -> float:
        duration = self.expected_duration
        return duration.total_seconds() if isinstance(duration, timedelta) else float(duration)


class JobRouter:
    """Routes by declared characteristics; see the module docstring for the rule."""

    def __init__(self, long_job_seconds: float = LONG_JOB_SECONDS) -> None:
        self.long_job_seconds = long_job_seconds

    def reasons(self, job: Job) -> list[str]:
        """Why the job needs Temporal (empty: Dramatiq will do)."""
        found = []
        if job.expected_seconds > self.long_job_seconds:
            found.append(f"expected to run {job.expected_seconds:g}s (over {self.long_job_seconds:g}s)")
        if job.steps > 1:
            found.append(f"{job.steps} steps")
        if job.needs_compensation:
            found.append("needs compensation")
        if _temporal_enabled() and job.name in _workflow_names():
            found.append(f"{job.name} is a workflow")
        return found

    def route(self, job: Job) -> JobBackend:
        return JobBackend.TEMPORAL if self.reasons(job) else JobBackend.DRAMATIQ

    def enqueue(self, job: Job) -> str:
        """Record the job and hand it to its backend; returns its id (the job record's primary key).

        Inside a transaction the job is sent when it commits, as ``apps.tasks.enqueue.enqueue`` does.
        Raises RoutingError when it cannot run where it must, EnqueueError when the backend refused it
        (the record then stays pending with the reason).
        """
        reasons = self.reasons(job)
        if not reasons:
            return self._to_dramatiq(job)
        if not _temporal_enabled():
            raise RoutingError(
                f"job {job.name!r} needs Temporal ({'; '.join(reasons)}) but Temporal is disabled (TEMPORAL_ENABLED)"
            )
        return _to_temporal(job, reasons)

    @staticmethod
    def _to_dramatiq(job: Job) -> str:
        from dramatiq.errors import ActorNotFound

        from apps.tasks.enqueue import enqueue

        try:
            return enqueue(job.name, args=tuple(job.args), kwargs=dict(job.kwargs))
        except ActorNotFound:
            raise RoutingError(f"no dramatiq actor named {job.name!r}") from None


def _temporal_enabled() -> bool:
    from apps.workflows.client import temporal_config

    return temporal_config().enabled


def _workflow_names() -> set[str]:
    from apps.workflows.discovery import workflow_names

    return workflow_names()


def _plain(value: Any) -> Any:
    """Dataclass arguments as dicts, for the job record (Temporal's converter sends them the same way)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _to_temporal(job: Job, reasons: list[str]) -> str:
    from apps.tasks import records
    from apps.workflows.client import temporal_config
    from apps.workflows.records import pending_transition

    config = temporal_config()
    job_id = job.job_id or str(uuid.uuid4())
    if job.name in _workflow_names():
        if job.kwargs:
            raise RoutingError(f"workflow {job.name!r} takes positional args only, not kwargs")
        workflow, workflow_args = job.name, list(job.args)
    else:
        workflow, workflow_args = "RunActorWorkflow", [_actor_call(job)]
    pending = pending_transition(job_id, job.name, config.task_queue, _plain(list(job.args)), _plain(dict(job.kwargs)))
    records.record(pending, wait=True, publish=False)  # "enqueued" goes out as the workflow starts
    start = partial(_start, job_id, job.name, workflow, workflow_args, reasons)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(start, robust=True)
    else:
        start()
    return job_id


def _actor_call(job: Job):
    """The actor's own limits, as ``RunActorWorkflow`` applies them (a long job gets twice its estimate)."""
    from dramatiq.errors import ActorNotFound

    from apps.tasks.config import get_task_config
    from apps.tasks.enqueue import resolve_actor
    from apps.workflows.client import temporal_config
    from apps.workflows.run_actor import ActorCall

    try:
        actor = resolve_actor(job.name)
    except ActorNotFound:
        raise RoutingError(f"no workflow or dramatiq actor named {job.name!r}") from None
    defaults = get_task_config().dramatiq
    options = actor.options
    time_limit = options.get("time_limit", defaults.time_limit_ms) / 1000
    return ActorCall(
        actor=actor.actor_name,
        args=_plain(list(job.args)),
        kwargs=_plain(dict(job.kwargs)),
        time_limit_seconds=max(time_limit, 2 * job.expected_seconds),
        max_attempts=options.get("max_retries", defaults.max_retries) + 1,
        min_backoff_seconds=options.get("min_backoff", defaults.min_backoff_ms) / 1000,
        max_backoff_seconds=options.get("max_backoff", defaults.max_backoff_ms) / 1000,
        heartbeat_timeout_seconds=temporal_config().heartbeat_timeout,
    )


def _start(job_id: str, name: str, workflow: str, args: list[Any], reasons: list[str]) -> None:
    """Start the workflow (id = job id) and publish ``enqueued``; on failure the record says why."""
    from apps.tasks import records
    from apps.tasks.enqueue import EnqueueError
    from apps.workflows import client
    from apps.workflows.records import pending_transition

    config = client.temporal_config()

    async def start(temporal) -> None:
        await temporal.start_workflow(
            workflow, args=args, id=job_id, task_queue=config.task_queue, memo={"job": name, "routed": reasons}
        )

    # Published first, so the stream shows it before the worker's "started".
    meta = {"workflow": workflow, "reasons": reasons}
    for event in records.events_for(pending_transition(job_id, name, config.task_queue, meta=meta)):
        records.record_event(event, wait=True)
    try:
        client.run(start, config)
    except Exception as exc:
        reason = f"workflow start failed: {type(exc).__name__}: {exc}"
        logger.error("Job %s (%s) stays pending: %s", job_id, name, reason)
        records.record(pending_transition(job_id, name, config.task_queue, error=reason), wait=True, publish=False)
        raise EnqueueError(reason) from exc
