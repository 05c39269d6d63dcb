"""The activities this app ships; ``manage.py runtemporal`` finds them here (``<app>.activities``)."""

from apps.workflows.records import record_workflow_event
from apps.workflows.run_actor import run_actor

__all__ = ["record_workflow_event", "run_actor"]
