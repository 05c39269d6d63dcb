"""The "temporal" section of the task health report: the Temporal server and the workers polling it.

Workers are the pollers the server itself reports for the task queue (workflow and activity
pollers, by identity ``host:pid``). An idle worker re-polls at least once a minute (the server's
long-poll), so a poller seen within ``LIVE_POLL_SECONDS`` is counted live; the server keeps a
stopped worker's pollers listed for a few minutes, marked not live here once they age.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

OK, DEGRADED, DOWN = "ok", "degraded", "down"
LIVE_POLL_SECONDS = 75
RPC_TIMEOUT = timedelta(seconds=5)


def temporal_health() -> dict[str, Any] | None:
    """The section, or None while Temporal is disabled (the report then has no "temporal" key).

    ``status``: down when the server does not answer, degraded when no live worker polls the task
    queue for workflows or for activities, ok otherwise.
    """
    from apps.tasks.masking import mask_text
    from apps.workflows import client

    config = client.temporal_config()
    if not config.enabled:
        return None
    section: dict[str, Any] = {
        "status": OK,
        "server": {"ok": False, "address": config.address, "namespace": config.namespace, "latency_ms": None},
        "task_queue": config.task_queue,
        "workers": [],
        "open_workflows": None,
    }
    try:
        probe = client.run(_probe, config.model_copy(update={"connect_timeout": min(config.connect_timeout, 5.0)}))
    except Exception as exc:
        section["server"]["error"] = mask_text(f"{type(exc).__name__}: {exc}")
        section["status"] = DOWN
        return section
    section["server"].update(ok=True, latency_ms=probe["latency_ms"], version=probe["version"])
    section["workers"] = probe["workers"]
    section["open_workflows"] = probe["open_workflows"]
    live_kinds = {kind for worker in probe["workers"] if worker["live"] for kind in worker["kinds"]}
    missing = sorted({"workflow", "activity"} - live_kinds)
    if missing:
        section["status"] = DEGRADED
        section["reason"] = f"no live worker polls task queue {config.task_queue!r} for {' or '.join(missing)} tasks"
    return section


async def _probe(temporal) -> dict[str, Any]:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest

    from apps.workflows.client import temporal_config

    config = temporal_config()
    started = time.perf_counter()
    info = await temporal.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    now = datetime.now(timezone.utc)
    workers: dict[str, dict[str, Any]] = {}
    for kind, queue_type in (
        ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    ):
        described = await temporal.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=config.namespace, task_queue=TaskQueue(name=config.task_queue), task_queue_type=queue_type
            ),
            timeout=RPC_TIMEOUT,
        )
        for poller in described.pollers:
            last = poller.last_access_time.ToDatetime(tzinfo=timezone.utc)
            age = max(0.0, (now - last).total_seconds())
            entry = workers.setdefault(poller.identity, {"identity": poller.identity, "kinds": [], "last_poll": None})
            entry["kinds"].append(kind)
            if entry["last_poll"] is None or last.isoformat() > entry["last_poll"]:
                entry.update(last_poll=last.isoformat(), seconds_since_poll=round(age, 1))
    for entry in workers.values():
        entry["live"] = entry["seconds_since_poll"] <= LIVE_POLL_SECONDS
    count = await temporal.count_workflows(f'TaskQueue = "{config.task_queue}" AND ExecutionStatus = "Running"')
    return {
        "latency_ms": latency_ms,
        "version": info.server_version,
        "workers": sorted(workers.values(), key=lambda entry: entry["identity"]),
        "open_workflows": count.count,
    }


def dashboard_workers(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The live Temporal workers of the health ``report``'s "temporal" section as rows of the
    dashboard's workers panel (``apps.tasks.services.dashboard.register_worker_source``)."""
    section = report.get("temporal") or {}
    rows = []
    for entry in section.get("workers", []):
        if not entry["live"]:  # the panel lists live workers; the server keeps stopped ones a while
            continue
        host, _, pid = entry["identity"].rpartition(":")  # runtemporal's identity is host:pid
        rows.append(
            {
                "worker_id": f"temporal:{entry['identity']}",
                "host": host if pid.isdigit() else entry["identity"],
                "pid": int(pid) if pid.isdigit() else None,
                "queues": [section["task_queue"]],
                "polls": entry["kinds"],
                "threads": None,
                "tasks_processed": None,
                "uptime_seconds": None,
                "last_seen_seconds_ago": entry["seconds_since_poll"],
            }
        )
    return rows
