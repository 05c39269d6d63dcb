"""Operate Temporal jobs: list, describe, cancel, signal (what ``manage.py workflows`` calls).

Each answer joins what Temporal says with the job record, and brings a record whose workflow closed
without workflow code seeing it (terminated, timed out) up to date. Signals and cancel requests are
published to the events stream too. Only a running workflow takes them, and only signals its
workflow class declares (``@workflow.signal``): anything else is refused (``Refused``), never sent.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from apps.tasks.models import JobRecord
from apps.tasks.services.records import record_as_dict
from apps.workflows import client, records

#: ``--status`` values and how Temporal's visibility queries spell them.
STATUSES = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "canceled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
    "continued_as_new": "ContinuedAsNew",
}
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
QUERY_TIMEOUT = timedelta(seconds=5)


class UnknownJob(LookupError):
    pass


class Refused(ValueError):
    """The workflow cannot take this: it has finished, or declares no such signal."""


def _status_name(status: Any) -> str:
    return status.name if status is not None else "UNKNOWN"


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(execution) -> dict[str, Any]:
    return {
        "job_id": execution.id,
        "run_id": execution.run_id,
        "workflow_type": execution.workflow_type,
        "status": _status_name(execution.status),
        "task_queue": execution.task_queue,
        "start_time": _iso(execution.start_time),
        "close_time": _iso(execution.close_time),
        "history_length": execution.history_length,
    }


def _sync_record(summary: dict[str, Any], close_time) -> None:
    records.reconcile(summary["job_id"], summary["status"], close_time, summary["workflow_type"], summary["task_queue"])


def list_workflows(status: str | None = None, workflow_type: str | None = None, limit: int = 20) -> list[dict]:
    """The newest workflows on the configured task queue, one row per workflow id: its latest run
    (a continued-as-new workflow has several), how many runs it had, and its job record's status."""
    config = client.require_enabled()
    queue = f'TaskQueue = "{config.task_queue}"'
    clauses = [queue]
    if status:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
        clauses.append(f'ExecutionStatus = "{STATUSES[status]}"')
    if workflow_type:
        if not _NAME_RE.fullmatch(workflow_type):
            raise ValueError(f"{workflow_type!r} is not a workflow type name")
        clauses.append(f'WorkflowType = "{workflow_type}"')

    async def call(temporal) -> dict[str, list]:
        runs: dict[str, list] = {}  # workflow id -> its runs, ids in the listing's order
        async for execution in temporal.list_workflows(" AND ".join(clauses)):
            if execution.id not in runs and len(runs) >= limit:
                break
            runs.setdefault(execution.id, []).append(execution)
        # Every run of those ids, also the ones the filters leave out (ids that cannot be quoted keep theirs).
        quotable = [job_id for job_id in runs if _NAME_RE.fullmatch(job_id)]
        if quotable:
            every = {job_id: [] for job_id in quotable}
            ids = ", ".join(f'"{job_id}"' for job_id in quotable)
            async for execution in temporal.list_workflows(f"{queue} AND WorkflowId IN ({ids})"):
                every[execution.id].append(execution)
            runs.update({job_id: found for job_id, found in every.items() if found})
        return runs

    rows = []
    for executions in client.run(call, config).values():
        latest = max(executions, key=lambda execution: execution.start_time)
        row = _summary(latest)
        row["runs"] = len(executions)
        _sync_record(row, latest.close_time)
        rows.append(row)
    statuses = dict(
        JobRecord.objects.filter(message_id__in=[row["job_id"] for row in rows]).values_list("message_id", "status")
    )
    for row in rows:
        row["record_status"] = statuses.get(row["job_id"])
    return rows


def describe(job_id: str) -> dict[str, Any]:
    """Status, pending activities, the workflow's ``progress`` query (when it has one) and the record."""
    from temporalio.api.enums.v1 import PendingActivityState
    from temporalio.service import RPCError, RPCStatusCode

    config = client.require_enabled()

    async def call(temporal) -> tuple[Any, Any]:
        handle = temporal.get_workflow_handle(job_id)
        description = await handle.describe()
        try:
            progress = await handle.query("progress", rpc_timeout=QUERY_TIMEOUT)
        except Exception:  # no such query, no worker to answer, or a closed run that cannot replay
            progress = None
        return description, progress

    try:
        description, progress = client.run(call, config)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise UnknownJob(f"no workflow {job_id!r} in namespace {config.namespace!r}") from None
        raise
    data = _summary(description)
    _sync_record(data, description.close_time)
    data["pending_activities"] = [
        {
            "activity_id": pending.activity_id,
            "activity_type": pending.activity_type.name,
            "state": PendingActivityState.Name(pending.state).removeprefix("PENDING_ACTIVITY_STATE_"),
            "attempt": pending.attempt,
            "last_failure": pending.last_failure.message,
        }
        for pending in description.raw_description.pending_activities
    ]
    data["progress"] = progress
    record = JobRecord.objects.filter(message_id=job_id).first()
    data["record"] = record_as_dict(record, detail=True) if record is not None else None
    return data


def cancel(job_id: str, *, by: str, reason: str = "") -> str:
    """Ask the running workflow to cancel; it decides how (the reindex compensates). The request's
    reason is what its record will say, "cancelled by X: reason"; returned."""
    from apps.tasks.services.control import cancel_message

    config = client.require_enabled()
    text = cancel_message(by, reason)

    async def call(temporal) -> str:
        handle = temporal.get_workflow_handle(job_id)
        workflow_type = _require_running(job_id, await handle.describe(), "cancelled")
        await handle.cancel(reason=text)
        return workflow_type

    workflow_type = _checked(call, job_id, config)
    records.publish([records.temporal_event("cancel_requested", job_id=job_id, queue=config.task_queue,
                                            actor=workflow_type, meta={"by": by, "reason": reason})])  # fmt: skip
    return text


def signal(job_id: str, name: str, args: list[Any] | None = None) -> None:
    """Send signal ``name`` with ``args`` to the running workflow, if its workflow class declares it."""
    config = client.require_enabled()

    async def call(temporal) -> str:
        handle = temporal.get_workflow_handle(job_id)
        workflow_type = _require_running(job_id, await handle.describe(), "signalled")
        signals = declared_signals(workflow_type)
        if signals is not None and name not in signals:
            raise Refused(
                f"unknown signal {name!r} for {workflow_type} (it declares: {', '.join(sorted(signals)) or 'none'})"
            )
        await handle.signal(name, args=list(args or []))
        return workflow_type

    workflow_type = _checked(call, job_id, config)
    records.publish([records.temporal_event("signalled", job_id=job_id, queue=config.task_queue,
                                            actor=workflow_type, meta={"signal": name})])  # fmt: skip


def declared_signals(workflow_type: str) -> frozenset[str] | None:
    """The signal names the registered workflow class of ``workflow_type`` declares; None when it
    takes any (a dynamic signal handler). Refused for a type no worker of this project registers."""
    from temporalio import workflow

    from apps.workflows.discovery import load_definitions

    cls = load_definitions().workflows.get(workflow_type)
    if cls is None:
        raise Refused(f"workflow type {workflow_type!r} is not among this project's workflows: its signals are unknown")
    names = set(workflow._Definition.must_from_class(cls).signals)
    return None if None in names else frozenset(name for name in names if name is not None)


def _require_running(job_id: str, description, action: str) -> str:
    """The workflow's type, if its latest run is running (a closed one would take the request silently)."""
    from temporalio.client import WorkflowExecutionStatus

    if description.status != WorkflowExecutionStatus.RUNNING:
        status = _status_name(description.status).lower()
        raise Refused(f"workflow {job_id} is {status}: only a running workflow can be {action}")
    return description.workflow_type


def _checked(call, job_id: str, config):
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return client.run(call, config)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise UnknownJob(f"no running workflow {job_id!r} in namespace {config.namespace!r}") from None
        raise
