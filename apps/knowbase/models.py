"""Documents, their embedded chunks, and the backups a reindex keeps to undo itself."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .storage import KnowbaseStorage

if TYPE_CHECKING:
    import numpy as np

#: Fields whose change means the document must be processed again.
SOURCE_FIELDS = frozenset({"content", "file"})
#: Fields a save resets when the source changed.
RESET_FIELDS = frozenset(
    {"content_hash", "status", "status_changed_at", "queued_at", "error", "attempts", "claim_token"}
)
#: Fields only the processor writes: a save of an existing document leaves them alone unless the source
#: changed, so an instance loaded before processing finished cannot overwrite the outcome.
PROCESSOR_FIELDS = RESET_FIELDS | {
    "claimed_by",
    "chunk_count",
    "embedder",
    "source_format",
    "source_encoding",
    "processed_at",
}


#: A recorded error is cut to this many characters.
MAX_ERROR_LENGTH = 2000


class DocumentStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # not handed to the broker: it refused, or reprocessing was asked
    QUEUED = "queued", "Queued"  # a message is on the knowledge queue (or is sent when the save commits)
    PROCESSING = "processing", "Processing"  # claimed by a worker
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class DocumentQuerySet(models.QuerySet):
    """The named transitions of ``Document.status``: the only writes of it (``save`` marks a new or
    changed source queued itself). Each is a compare-and-set where a concurrent writer may have moved
    the document on, and returns how many rows it changed. Workers write only through these
    ``update`` calls, so they never trigger the post_save handler."""

    def mark_sent(self, document_id: int) -> int:
        """pending → queued: its message is on the queue."""
        now = timezone.now()
        return self.filter(pk=document_id, status=DocumentStatus.PENDING).update(
            status=DocumentStatus.QUEUED, status_changed_at=now, queued_at=now, error=""
        )

    def send_failed(self, document_id: int, error: str) -> int:
        """queued → pending with the reason: the broker refused its message (unless a worker or a
        sweeper took it meanwhile)."""
        return self.filter(pk=document_id, status=DocumentStatus.QUEUED).update(
            status=DocumentStatus.PENDING, status_changed_at=timezone.now(), queued_at=None, error=error
        )

    def note_not_sent(self, document_ids: Iterable[int], error: str) -> int:
        """pending stays pending, with why it is not queued yet."""
        return self.filter(pk__in=list(document_ids), status=DocumentStatus.PENDING).update(error=error)

    def request_processing(self, document_ids: Iterable[int]) -> int:
        """any → pending, discarding a claim in progress: it is to be processed again."""
        return self.filter(pk__in=list(document_ids)).update(
            status=DocumentStatus.PENDING, status_changed_at=timezone.now(), error="", attempts=0, claim_token=""
        )

    def take_for_resend(self, document_id: int, status: str, changed_at) -> int:
        """A stale document (still ``status`` since ``changed_at``) → pending, to be sent again."""
        return self.filter(pk=document_id, status=status, status_changed_at=changed_at).update(
            status=DocumentStatus.PENDING, status_changed_at=timezone.now(), claim_token=""
        )

    def claim(self, document_id: int, status: str, changed_at, token: str, attempt: int, by: str = "") -> int:
        """pending, queued or a stale processing (still ``status`` since ``changed_at``) → processing
        under ``token``, by the process ``by`` names (``apps.tasks.services.workers.process_identity``)."""
        return self.filter(pk=document_id, status=status, status_changed_at=changed_at).update(
            status=DocumentStatus.PROCESSING, status_changed_at=timezone.now(), claim_token=token, attempts=attempt,
            claimed_by=by,
        )  # fmt: skip

    def mark_completed(self, document_id: int, **results) -> int:
        """processing → completed, with what processing produced (chunk count, embedder, format…);
        call it inside the transaction that checked the claim and replaced the chunks."""
        now = timezone.now()
        return self.filter(pk=document_id).update(
            status=DocumentStatus.COMPLETED,
            status_changed_at=now,
            processed_at=now,
            claim_token="",
            error="",
            **results,
        )

    def mark_failed(self, document_id: int, token: str, error: str) -> int:
        """processing → failed with the reason, if the claim ``token`` still stands."""
        return self._release(document_id, token, DocumentStatus.FAILED, error)

    def hand_back(self, document_id: int, token: str, reason: str) -> int:
        """processing → queued (a retry or the sweeper processes it again), if ``token`` still stands."""
        return self._release(document_id, token, DocumentStatus.QUEUED, reason)

    def _release(self, document_id: int, token: str, status: str, error: str) -> int:
        return self.filter(pk=document_id, claim_token=token).update(
            status=status, status_changed_at=timezone.now(), claim_token="", error=error[:MAX_ERROR_LENGTH]
        )

    def restore_state(self, document_id: int, state: dict) -> int:
        """Write back a saved state (a cancelled reindex); a saved ``processing`` is void without its
        claim, so it comes back pending for the sweeper."""
        state = dict(state)
        if state.get("status") == DocumentStatus.PROCESSING:
            state["status"] = DocumentStatus.PENDING
        return self.filter(pk=document_id).update(**state, status_changed_at=timezone.now(), claim_token="", attempts=0)


def human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


class Document(models.Model):
    """A text to index. Saving a new document or a changed source queues it for processing."""

    title = models.CharField(max_length=255)
    content = models.TextField(blank=True, help_text="The text to index; ignored when a file is attached.")
    file = models.FileField(
        upload_to="knowbase/%Y/%m/",
        storage=KnowbaseStorage(),
        max_length=500,
        blank=True,
        help_text="A .txt, .md or .html file; when given, it is the source instead of the content.",
    )
    source = models.CharField(max_length=1024, blank=True, db_index=True, help_text="Where it came from (a path).")
    content_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    status = models.CharField(max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.PENDING)
    error = models.TextField(blank=True, default="")
    chunk_count = models.PositiveIntegerField(default=0)
    #: Claims of the current version by a worker; reset when the source changes.
    attempts = models.PositiveIntegerField(default=0)
    #: The token of the claim in force; results of an older claim are discarded.
    claim_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    #: The process that made the last claim (``host:pid@worker``): a redelivery takes back the claim
    #: of a process that is gone instead of waiting for the lease. Read only while ``processing``.
    claimed_by = models.CharField(max_length=255, blank=True, default="", editable=False)
    #: The embedding backend that produced the chunks' vectors (search compares like with like).
    embedder = models.CharField(max_length=100, blank=True, default="")
    source_format = models.CharField(max_length=16, blank=True, default="")
    source_encoding = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    #: The hash and file name as last loaded or saved: what "changed" is measured against.
    _loaded_hash: str | None = None
    _loaded_file_name: str | None = None
    #: Set by ``save()`` for the post_save handler.
    needs_processing: bool = False

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "status_changed_at"], name="knowbase_doc_status")]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        """Validate and hash the source; a new document or a changed source is saved as queued.

        The post_save handler (``signals.py``) sends it to the knowledge queue once the transaction
        commits; if the broker refuses, the document goes back to pending with the reason (and a
        crash before the send leaves it queued: the sweeper sends stale queued documents again).
        Marking it in the same write spares a second durable write per document. Saving an existing
        document writes the processing fields (``PROCESSOR_FIELDS``) only when the source changed.
        Workers never call this: they write with ``QuerySet.update``, so they cannot trigger themselves.
        """
        update_fields = kwargs.get("update_fields")
        self.needs_processing = False
        if update_fields is None or SOURCE_FIELDS & set(update_fields):
            self.validate_source()
            new_hash = self.compute_content_hash()
            if self._state.adding or new_hash != self._loaded_hash:
                self.content_hash = new_hash
                self._mark_queued()
        if not self._state.adding and not kwargs.get("force_insert"):
            if update_fields is None:
                update_fields = {field.name for field in self._meta.concrete_fields if not field.primary_key}
                update_fields -= PROCESSOR_FIELDS
            kwargs["update_fields"] = set(update_fields) | (RESET_FIELDS if self.needs_processing else set())
        super().save(*args, **kwargs)
        self._loaded_hash = self.content_hash
        self._loaded_file_name = self.file.name or ""

    def _mark_queued(self) -> None:
        """new or changed source → queued, written by the save itself (the transition ``save`` owns)."""
        self.status = DocumentStatus.QUEUED
        self.status_changed_at = self.queued_at = timezone.now()
        self.error = ""
        self.attempts = 0
        self.claim_token = ""
        self.needs_processing = True

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_hash = instance.__dict__.get("content_hash")
        file_value = instance.__dict__.get("file")
        instance._loaded_file_name = str(getattr(file_value, "name", file_value) or "")
        return instance

    # --- validation ---------------------------------------------------------------------------

    def source_size(self) -> int:
        """Bytes of the source: the file's size when a file is attached, else the content's UTF-8 size."""
        if self.file:
            return self.file.size
        return len(self.content.encode("utf-8", "surrogatepass"))

    def validate_source(self) -> None:
        """Refuse what cannot be stored or processed: too large, NUL characters, unpaired surrogates."""
        from apps.knowbase.config import get_config

        limit = get_config().max_document_bytes
        if self.file:
            try:
                size = self.file.size
            except OSError as exc:
                raise ValidationError({"file": f"the file cannot be read: {exc}"}) from exc
            if size > limit:
                raise ValidationError(
                    {"file": f"the file is {human_bytes(size)}; documents are limited to {human_bytes(limit)}"},
                    code="too_large",
                )
            return
        try:
            size = len(self.content.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ValidationError({"content": f"the content is not valid Unicode text: {exc.reason}"}) from exc
        if size > limit:
            raise ValidationError(
                {"content": f"the content is {human_bytes(size)}; documents are limited to {human_bytes(limit)}"},
                code="too_large",
            )
        if "\x00" in self.content:
            raise ValidationError({"content": "the content contains NUL characters (binary data?)"}, code="binary")

    def clean(self) -> None:
        super().clean()
        self.validate_source()

    # --- change detection ---------------------------------------------------------------------

    def compute_content_hash(self) -> str:
        """SHA-256 of the source. A stored file that did not change keeps its recorded hash (no re-read)."""
        if self.file:
            unchanged = (
                getattr(self.file, "_committed", True)
                and self.file.name == self._loaded_file_name
                and self.content_hash
            )
            if unchanged:
                return self.content_hash
            digest = hashlib.sha256()
            for block in self.file.chunks():
                digest.update(block)
            if self.file._committed:
                self.file.close()  # opened from storage just for the hash
            else:
                self.file.seek(0)  # the upload is read again when it is stored
            return digest.hexdigest()
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()


class DocumentChunkQuerySet(models.QuerySet):
    def replace_for(self, document_id: int, chunks: Iterable[DocumentChunk]) -> None:
        """Swap a document's chunks for ``chunks``; call it inside the transaction that decides to."""
        self.filter(document_id=document_id).delete()
        self.bulk_create(chunks, batch_size=500)


class DocumentChunk(models.Model):
    """A passage of a document's extracted text, with its offsets and its embedding."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    #: ``extracted_text[start_offset:end_offset] == text``.
    start_offset = models.PositiveIntegerField()
    end_offset = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField()
    #: float32, little-endian, L2-normalised (``vectors.vector_to_bytes``).
    embedding = models.BinaryField()

    objects = DocumentChunkQuerySet.as_manager()

    class Meta:
        ordering = ["document", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="knowbase_chunk_position")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"

    @property
    def vector(self) -> np.ndarray:
        """The embedding as a numpy array (numpy is imported on use: workers and web start faster)."""
        from .vectors import bytes_to_vector

        return bytes_to_vector(bytes(self.embedding))


# --- reindex backups (``reindex/``): what a knowledge-base reindex keeps so it can be undone ------
# Written once per document and job before the document is processed again; restored if the job
# is cancelled or fails (the saga's compensation), dropped once the new index is approved.


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
        constraints = [models.UniqueConstraint(fields=["job_id", "document_id"], name="knowbase_backup_once")]

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
