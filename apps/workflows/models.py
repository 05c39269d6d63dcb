"""What a knowledge-base reindex keeps so it can be undone: each document's state and chunks before it.

Written once per document and job before the document is processed again; restored if the job is
cancelled or fails (the saga's compensation), dropped once the new index is approved.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class DocumentBackup(models.Model):
    """One document as it was before reindex job ``job_id`` processed it again."""

    #: The job (= workflow) id; the unique constraint indexes it first, for restore and drop.
    job_id = models.CharField(max_length=64)
    #: Not a foreign key: a document deleted during the job simply has nothing to restore.
    document_id = models.BigIntegerField()
    #: The source version backed up; a document edited since keeps its newer chunks on restore.
    content_hash = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=16)
    error = models.TextField(blank=True, default="")
    chunk_count = models.PositiveIntegerField(default=0)
    embedder = models.CharField(max_length=100, blank=True, default="")
    source_format = models.CharField(max_length=16, blank=True, default="")
    source_encoding = models.CharField(max_length=32, blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_id", "document_id"], name="workflows_backup_once")]

    def __str__(self) -> str:
        return f"document {self.document_id} before {self.job_id}"


class ChunkBackup(models.Model):
    """One chunk of a backed-up document, with its original id (restored as it was)."""

    backup = models.ForeignKey(DocumentBackup, on_delete=models.CASCADE, related_name="chunks")
    chunk_id = models.BigIntegerField()
    position = models.PositiveIntegerField()
    text = models.TextField()
    start_offset = models.PositiveIntegerField()
    end_offset = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField()
    embedding = models.BinaryField()

    class Meta:
        ordering = ["backup", "position"]

    def __str__(self) -> str:
        return f"{self.backup_id}#{self.position}"
