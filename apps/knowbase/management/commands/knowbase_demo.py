"""Create the sample document, wait for a running worker to process it, print what came out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.files.base import ContentFile
from django.core.management.base import CommandError

from apps.knowbase.models import Document, DocumentStatus
from apps.knowbase.services.dispatch import request_reprocessing
from apps.knowbase.services.search import search
from apps.knowbase.services.status import wait_until_settled
from apps.tasks.management.base import OperatorCommand

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "knowbase-intro.md"
SOURCE = "sample:knowbase-intro.md"
QUERY = "what if Redis is unreachable when a document is saved"


class Command(OperatorCommand):
    help = "Process the shipped sample document through a running worker (queue 'knowledge') and show the result."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="Seconds to wait for the worker (60).")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        data = SAMPLE.read_bytes()
        document = Document.objects.filter(source=SOURCE).order_by("pk").first()
        if document is None:
            document = Document(source=SOURCE, title="Knowbase: how a document becomes searchable")
            document.file = ContentFile(data, name=SAMPLE.name)
            document.save()
            self.stdout.write(f"Created document {document.pk} from {SAMPLE.name}; it was sent to the knowledge queue.")
        else:
            request_reprocessing([document.pk])
            self.stdout.write(f"Sent document {document.pk} ({SAMPLE.name}) to the knowledge queue again.")
        wait_until_settled([document.pk], timeout)
        document.refresh_from_db()
        if document.status == DocumentStatus.PENDING and document.error:
            raise CommandError(f"document {document.pk} could not be queued: {document.error}")
        if document.status not in (DocumentStatus.COMPLETED, DocumentStatus.FAILED):
            raise CommandError(
                f"document {document.pk} is still {document.status} after {timeout:g}s: "
                "is `manage.py rundramatiq` running on queue 'knowledge'?"
            )
        line = f"Document {document.pk} {document.title!r}: {document.status}, {document.chunk_count} chunks"
        if document.status == DocumentStatus.FAILED:
            raise CommandError(f"{line}; error: {document.error}")
        self.stdout.write(self.style.SUCCESS(line))
        hits = search(QUERY, top=1, document_ids=[document.pk])
        if hits:
            snippet = " ".join(hits[0].text.split())[:160]
            self.stdout.write(f"Best chunk for {QUERY!r} (score {hits[0].score:.2f}): {snippet}...")
