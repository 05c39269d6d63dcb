"""Where documents stand, and a bounded wait for them to settle (commands and the demo)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from apps.knowbase.models import Document, DocumentStatus

SETTLED = (DocumentStatus.COMPLETED, DocumentStatus.FAILED)


def status_counts(document_ids: Iterable[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in Document.objects.filter(pk__in=list(document_ids)).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def not_completed(document_ids: Iterable[int]) -> list[Document]:
    """The documents among ``document_ids`` that did not complete (failed, or still waiting), by id."""
    return list(
        Document.objects.filter(pk__in=list(document_ids)).exclude(status=DocumentStatus.COMPLETED).order_by("pk")
    )


def wait_until_settled(
    document_ids: Iterable[int],
    timeout: float,
    on_progress: Callable[[int, int], None] | None = None,
    interval: float = 0.2,
) -> dict[str, int]:
    """Poll until every document is completed or failed (or deleted), or ``timeout`` seconds pass.

    Returns the final counts by status; ``on_progress(settled, total)`` is called after each poll.
    """
    ids = list(document_ids)
    deadline = time.monotonic() + timeout
    while True:
        counts = status_counts(ids)
        settled = sum(counts.get(status, 0) for status in SETTLED) + (len(ids) - sum(counts.values()))
        if on_progress:
            on_progress(settled, len(ids))
        if settled >= len(ids) or time.monotonic() >= deadline:
            return counts
        time.sleep(interval)
