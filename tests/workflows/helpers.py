"""Temporal worker subprocesses and bounded waits on workflows, records and the events stream."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from apps.tasks.models import JobRecord
from apps.workflows import client
from tests.helpers import ManagedProcess, wait_for


class TemporalWorker(ManagedProcess):
    """``manage.py runtemporal`` in its own process group, logging to a file, so a kill is a real kill."""

    def __init__(self, *args: str, env: dict[str, str], log_path: Path) -> None:
        super().__init__("runtemporal", *args, log_path=log_path, env=env)

    def wait_ready(self, timeout: float = 90) -> TemporalWorker:
        def ready() -> bool:
            assert self.process.poll() is None, f"runtemporal exited:\n{self.log()}"
            return "; ready" in self.log()

        wait_for(ready, timeout=timeout, interval=0.05, message="runtemporal to be ready")
        return self

    def terminate(self, timeout: float = 30) -> int:
        return super().terminate(timeout)


# --- workflows ------------------------------------------------------------------------------


def query_progress(job_id: str) -> dict[str, Any] | None:
    async def call(temporal):
        return await temporal.get_workflow_handle(job_id).query("progress", rpc_timeout=timedelta(seconds=10))

    return client.run(call)


def wait_for_phase(job_id: str, phase: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(
        lambda: (found := query_progress(job_id)) and found["phase"] == phase and found,
        timeout=timeout,
        interval=0.1,
        message=f"workflow {job_id} to reach {phase}",
    )


def workflow_result(job_id: str, timeout: float = 90) -> Any:
    """The workflow's result (raises its failure), waiting at most ``timeout`` seconds."""

    async def call(temporal):
        return await asyncio.wait_for(temporal.get_workflow_handle(job_id).result(), timeout)

    return client.run(call)


def workflow_status(job_id: str) -> str:
    async def call(temporal):
        return (await temporal.get_workflow_handle(job_id).describe()).status.name

    return client.run(call)


def history(job_id: str) -> list[dict[str, Any]]:
    """The workflow's history as (type, activity type or signal name) in order; activity completions
    carry the type of the activity they complete."""
    from temporalio.api.enums.v1 import EventType

    async def call(temporal):
        return await temporal.get_workflow_handle(job_id).fetch_history()

    scheduled: dict[int, str] = {}
    events = []
    for event in client.run(call).events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        name = ""
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
        elif event.HasField("activity_task_completed_event_attributes"):
            name = scheduled.get(event.activity_task_completed_event_attributes.scheduled_event_id, "")
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            name = event.workflow_execution_signaled_event_attributes.signal_name
        events.append({"type": kind, "name": name})
    return events


def completed_activities(job_id: str, activity_type: str) -> int:
    completed = [event for event in history(job_id) if event["type"] == "ACTIVITY_TASK_COMPLETED"]
    return sum(1 for event in completed if event["name"] == activity_type)


# --- records and events ---------------------------------------------------------------------


def wait_for_record(job_id: str, *statuses: str, timeout: float = 90) -> JobRecord:
    def reached():
        found = JobRecord.objects.filter(message_id=job_id).first()
        return found if found is not None and found.status in statuses else None

    return wait_for(reached, timeout=timeout, interval=0.05, message=f"job {job_id} to be {statuses}")
