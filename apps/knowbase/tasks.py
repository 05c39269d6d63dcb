"""The knowledge queue's actor; discovered by ``manage.py rundramatiq``."""

from __future__ import annotations

from apps.tasks.decorators import task


@task(queue_name="knowledge")
def process_document_async(document_id: int) -> dict:
    """Process one document (see ``services.processing``); the returned outcome lands in the job record.

    Bad input and vanished documents return normally (failed or skipped); transient errors raise to
    be retried; an id that is not an integer is a permanent error (dead letter).
    """
    from apps.knowbase.services.processing import process_document

    return process_document(document_id).as_dict()
