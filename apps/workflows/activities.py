"""The activities this app ships; ``manage.py runtemporal`` finds them here (``<app>.activities``)."""

from apps.workflows.lifecycle import record_workflow_event
from apps.workflows.reindex.activities import (
    count_documents,
    drop_backups,
    list_documents,
    reindex_batch,
    restore_backups,
)
from apps.workflows.run_actor import run_actor

__all__ = [
    "count_documents",
    "drop_backups",
    "list_documents",
    "record_workflow_event",
    "reindex_batch",
    "restore_backups",
    "run_actor",
]
