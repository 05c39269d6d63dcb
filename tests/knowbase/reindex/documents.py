"""Small indexed documents and snapshots of their chunks, for the reindex tests."""

from __future__ import annotations

from apps.knowbase.models import Document, DocumentChunk, DocumentStatus
from apps.knowbase.reindex.messages import ReindexRequest
from apps.knowbase.services.processing import process_document
from apps.workflows.router import Job, JobRouter


def indexed_documents(count: int) -> list[int]:
    """``count`` documents, processed here (the test's own embedder), ids in order."""
    ids = []
    for number in range(count):
        document = Document.objects.create(
            title=f"Document {number}",
            content=f"Document {number} is about queues.\n\nRedis keeps messages; worker {number} takes them.",
        )
        assert process_document(document.pk).outcome == "completed"
        ids.append(document.pk)
    return ids


def chunks(document_ids: list[int]) -> dict[int, list[tuple[int, str, bytes]]]:
    """Each document's chunks as (id, text, embedding), in position order."""
    found: dict[int, list[tuple[int, str, bytes]]] = {document_id: [] for document_id in document_ids}
    rows = DocumentChunk.objects.filter(document_id__in=document_ids).order_by("document_id", "position")
    for document_id, pk, text, embedding in rows.values_list("document_id", "pk", "text", "embedding"):
        found[document_id].append((pk, text, bytes(embedding)))
    return found


def chunk_ids(document_ids: list[int]) -> dict[int, list[int]]:
    return {document_id: [pk for pk, _, _ in rows] for document_id, rows in chunks(document_ids).items()}


def all_completed(document_ids: list[int]) -> bool:
    statuses = Document.objects.filter(pk__in=document_ids).values_list("status", flat=True)
    return set(statuses) == {DocumentStatus.COMPLETED}


def start_reindex(**options) -> str:
    """Start ``ReindexKnowledgeWorkflow`` through the router (a short start-to-close time-out for the tests;
    the default heartbeat time-out is short already)."""
    request = ReindexRequest(**{"activity_timeout_seconds": 60, **options})
    return JobRouter().enqueue(Job("ReindexKnowledgeWorkflow", args=[request], steps=3, needs_compensation=True))
