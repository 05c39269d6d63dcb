"""The outbox sweeper: send again what the queue may never have received.

A document stays ``pending`` when Redis was down at save time; it can stay ``queued`` if its
message was lost (Redis restarted without persistence, queue purged) and ``processing`` if the
worker that claimed it was killed. Each sweep re-sends documents that have been pending or queued
longer than ``KNOWBASE_SWEEP_AGE_SECONDS`` and those whose claim is older than
``KNOWBASE_PROCESSING_LEASE_SECONDS``. A document re-sent twice is processed once: the processor
claims it, and a duplicate message finds it claimed or done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from apps.knowbase.config import get_config
from apps.knowbase.models import Document, DocumentStatus

from .dispatch import send_processing

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    found: dict[str, int] = field(default_factory=dict)  # stale documents by status
    sent: list[int] = field(default_factory=list)
    not_sent: list[int] = field(default_factory=list)  # left pending: the broker refused
    dry_run: bool = False

    @property
    def broker_down(self) -> bool:
        return bool(self.not_sent)


def stale_documents(age_seconds: int | None = None, limit: int | None = None) -> list[tuple[int, str, object]]:
    """(id, status, status_changed_at) of documents to send again, oldest first."""
    config = get_config()
    now = timezone.now()
    age = timedelta(seconds=config.sweep_age_seconds if age_seconds is None else age_seconds)
    lease = timedelta(seconds=config.processing_lease_seconds)
    rows = (
        Document.objects.filter(
            Q(status__in=[DocumentStatus.PENDING, DocumentStatus.QUEUED], status_changed_at__lte=now - age)
            | Q(status=DocumentStatus.PROCESSING, status_changed_at__lte=now - lease)
        )
        .order_by("status_changed_at", "pk")
        .values_list("pk", "status", "status_changed_at")
    )
    return list(rows[: limit or config.sweep_batch_size])


def sweep(age_seconds: int | None = None, limit: int | None = None, dry_run: bool = False) -> SweepReport:
    """Send stale documents again; stops at the first broker failure (the rest wait for the next sweep)."""
    report = SweepReport(dry_run=dry_run)
    candidates = stale_documents(age_seconds, limit)
    for _, status, _ in candidates:
        report.found[status] = report.found.get(status, 0) + 1
    if dry_run:
        return report
    for position, (document_id, status, changed_at) in enumerate(candidates):
        # Compare-and-set: a document another sweeper (or a worker) touched meanwhile is left alone.
        if not Document.objects.take_for_resend(document_id, status, changed_at):
            continue
        if send_processing(document_id):
            report.sent.append(document_id)
            continue
        report.not_sent = [document_id] + [row[0] for row in candidates[position + 1 :]]
        logger.error("Sweep stopped: the broker refused document %s; %d left.", document_id, len(report.not_sent))
        break
    if report.sent:
        logger.info("Sweep re-sent %d documents: %s", len(report.sent), report.found)
    return report
