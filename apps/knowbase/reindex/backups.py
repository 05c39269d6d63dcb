"""The database side of a reindex: back a document up, process it again, restore or drop the backups.

Every step is idempotent, because Temporal may run an activity again after a worker died mid-way:
a document is backed up once per job (a retry must not back up the chunks the job itself made), a
document the job already processed is not processed twice, a restored backup is deleted in the
same transaction that restores it.
"""

from __future__ import annotations

from django.db import connections, transaction

from apps.knowbase.models import ChunkBackup, Document, DocumentBackup, DocumentChunk
from apps.knowbase.services.processing import SKIPPED, process_document

#: Document fields a backup keeps and a restore writes back.
STATE_FIELDS = (
    "content_hash", "status", "error", "chunk_count", "embedder", "source_format", "source_encoding", "processed_at",
)  # fmt: skip
ALREADY_DONE = "already_done"
DROP_BATCH = 500


def _locked(queryset):
    """``select_for_update`` where the database has it (SQLite's IMMEDIATE transactions lock anyway)."""
    return queryset.select_for_update() if connections[queryset.db].features.has_select_for_update else queryset


def count_documents() -> int:
    return Document.objects.count()


def document_ids_after(after: int, limit: int) -> list[int]:
    """The next ``limit`` document ids above ``after``, in id order (the reindex walks the table by id)."""
    return list(Document.objects.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:limit])


def back_up(job_id: str, document_id: int) -> tuple[DocumentBackup | None, bool]:
    """The job's backup of the document, made now if missing; ``(None, False)`` if the document is gone."""
    with transaction.atomic():
        existing = DocumentBackup.objects.filter(job_id=job_id, document_id=document_id).first()
        if existing is not None:
            return existing, False
        state = _locked(Document.objects.filter(pk=document_id)).values(*STATE_FIELDS).first()
        if state is None:
            return None, False
        backup = DocumentBackup.objects.create(job_id=job_id, document_id=document_id, **state)
        ChunkBackup.objects.bulk_create(
            [
                ChunkBackup(
                    backup=backup,
                    chunk_id=chunk.pk,
                    position=chunk.position,
                    text=chunk.text,
                    start_offset=chunk.start_offset,
                    end_offset=chunk.end_offset,
                    token_count=chunk.token_count,
                    embedding=chunk.embedding,
                )
                for chunk in DocumentChunk.objects.filter(document_id=document_id).order_by("position")
            ],
            batch_size=500,
        )
    return backup, True


def reindex_document(job_id: str, document_id: int) -> str:
    """Back the document up, then process it again; returns the outcome (completed, failed, skipped,
    or ``already_done`` when an earlier attempt of this job processed it)."""
    backup, created = back_up(job_id, document_id)
    if backup is None:
        return SKIPPED
    if not created:
        processed_at = Document.objects.filter(pk=document_id).values_list("processed_at", flat=True).first()
        if processed_at is not None and processed_at > backup.created_at:
            return ALREADY_DONE
    # As a reprocess request does, minus the message: this activity processes it itself.
    Document.objects.request_processing([document_id])
    return process_document(document_id).outcome


def restore(job_id: str) -> int:
    """Put back every document the job backed up (chunks with their original ids); returns how many.

    A document whose source changed since its backup keeps its newer chunks; a deleted one is skipped.
    """
    restored = 0
    for backup_id in list(DocumentBackup.objects.filter(job_id=job_id).values_list("pk", flat=True)):
        with transaction.atomic():
            backup = DocumentBackup.objects.filter(pk=backup_id).first()
            if backup is None:  # restored by a concurrent attempt
                continue
            current = _locked(Document.objects.filter(pk=backup.document_id)).values("content_hash").first()
            if current is not None and current["content_hash"] == backup.content_hash:
                DocumentChunk.objects.replace_for(
                    backup.document_id,
                    (
                        DocumentChunk(
                            pk=chunk.chunk_id,
                            document_id=backup.document_id,
                            position=chunk.position,
                            text=chunk.text,
                            start_offset=chunk.start_offset,
                            end_offset=chunk.end_offset,
                            token_count=chunk.token_count,
                            embedding=chunk.embedding,
                        )
                        for chunk in backup.chunks.order_by("position")
                    ),
                )
                Document.objects.restore_state(
                    backup.document_id, {name: getattr(backup, name) for name in STATE_FIELDS}
                )
                restored += 1
            backup.delete()
    return restored


def drop(job_id: str) -> int:
    """Delete the job's backups (the old chunks), in batches; returns how many documents they covered."""
    dropped = 0
    while True:
        ids = list(DocumentBackup.objects.filter(job_id=job_id).values_list("pk", flat=True)[:DROP_BATCH])
        if not ids:
            return dropped
        with transaction.atomic():
            ChunkBackup.objects.filter(backup_id__in=ids).delete()
            dropped += DocumentBackup.objects.filter(pk__in=ids).delete()[0]
