"""The workflow lifecycle as the worker reports it: the event, and the name of the local activity
that records it (``apps.workflows.records.record_workflow_event``).

Importable inside the workflow sandbox (no Django at module level): the interceptor builds
``WorkflowEvent`` there; the activity runs in the worker's activity threads, where Django is set up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RECORD_ACTIVITY = "record_workflow_event"


@dataclass
class WorkflowEvent:
    """One transition of a workflow job (times as ISO strings, so any converter carries them)."""

    event: str  # started, completed, failed, cancelled
    job_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    attempt: int
    at: str
    enqueued_at: str
    started_at: str | None = None
    args: list[Any] = field(default_factory=list)
    result: Any = None
    error_type: str = ""
    error_message: str = ""
