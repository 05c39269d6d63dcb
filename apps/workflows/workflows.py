"""The workflows this app ships; ``manage.py runtemporal`` finds them here (``<app>.workflows``)."""

from apps.workflows.run_actor import RunActorWorkflow

__all__ = ["RunActorWorkflow"]
