"""The knowledge queue's actor; discovered by ``manage.py rundramatiq``."""

from __future__ import annotations

from apps.knowbase.services.dispatch import PROCESS_ACTOR
from apps.knowbase.services.sweeper import sweep
from apps.tasks.decorators import task


@task(queue_name="knowledge", actor_name=PROCESS_ACTOR)
def process_document_async(document_id: int) -> dict:
    """Process one document (see ``services.processing``); the returned outcome lands in the job record.

    Bad input and vanished documents return normally (failed or skipped); transient errors raise to
    be retried; an id that is not an integer is a permanent error (dead letter).
    """
    # Imported on first run: processing brings numpy and the embedder, which a web process that
    # only sends documents (and imports this module to find the actor) never needs.
    from apps.knowbase.services.processing import process_document

    return process_document(document_id).as_dict()


@task(queue_name="default", max_retries=0)
def knowbase_sweep(older_than: int | None = None) -> dict:
    """The outbox sweeper (``services.sweeper``), sent by the scheduler (the ``knowbase-sweep`` entry
    of TASK_CONFIG.schedules). Not retried: the next tick is the retry."""
    report = sweep(age_seconds=older_than)
    return {"found": report.found, "sent": len(report.sent), "not_sent": len(report.not_sent)}
