"""Process one document: claim it, extract, chunk, embed, replace its chunks, record the outcome.

Safety rules, in the order they apply:

- **Claim.** A short transaction locks the row (``select_for_update`` on PostgreSQL, waiting at
  most ``CLAIM_LOCK_TIMEOUT``; SQLite's write lock, taken at BEGIN in this project, serialises it
  there) and moves it to ``processing`` with a claim token by compare-and-set. A second worker
  waits for that short transaction, then finds the document claimed (a lease younger than
  ``KNOWBASE_PROCESSING_LEASE_SECONDS``) or done, and skips it. It does not skip a row merely
  because it is locked: the lock may be anyone's (the dispatcher marking it queued, an admin edit),
  and skipping then would leave the document queued with its only message spent.
  The token names the message and its attempt, so a retry of the same message takes back a claim
  an earlier attempt could not release (the database refused the outcome): dramatiq retries only
  after that attempt ended. The claim also names its process (``claimed_by``): a claim whose
  process is certainly gone (this host: its pid is gone; another host: a worker whose heartbeat
  expired) is taken back at once, so the message redelivered from a SIGKILLed worker processes the
  document within the recovery window. Any other claim within its lease is respected.
- **Work** happens outside any transaction, so no lock is held while embedding.
- **Replace.** One transaction locks the row again, checks the claim token is still ours (a save
  with new content or a reprocess request resets it: the newer version wins) and replaces all
  chunks: a replay produces the same rows, never duplicates.
- **Outcome.** Bad input (empty, binary, undecodable, too large, missing file, a backend that
  raises) ends ``failed`` with the reason; the task returns normally, so the worker goes on. A
  transient error (database or network) puts the document back to ``queued`` and raises for a
  retry, until ``KNOWBASE_MAX_ATTEMPTS`` claims, then it is ``failed`` too. A document deleted
  before or during processing is skipped.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import connections, transaction
from django.utils import timezone
from dramatiq.middleware import Interrupt
from dramatiq.middleware.time_limit import TimeLimitExceeded

from apps.knowbase.config import get_config
from apps.knowbase.models import MAX_ERROR_LENGTH, Document, DocumentChunk, DocumentStatus, human_bytes
from apps.knowbase.vectors import vector_to_bytes
from apps.tasks.errors import TransientError, is_transient
from apps.tasks.logging import current_job
from apps.tasks.services import workers

from .chunking import chunk_text
from .embeddings import embed_texts, get_embedder
from .extraction import Extracted, ExtractionError, extract_text

logger = logging.getLogger(__name__)

COMPLETED, FAILED, SKIPPED = "completed", "failed", "skipped"
CLAIMABLE = (DocumentStatus.PENDING, DocumentStatus.QUEUED, DocumentStatus.PROCESSING)

#: Seconds a claim waits for a locked document row (PostgreSQL) before failing for a retry.
CLAIM_LOCK_TIMEOUT = 10


class DocumentRejected(Exception):
    """The document cannot be processed as it is; the message is the recorded reason."""


@dataclass
class ProcessResult:
    """What one run did; returned by the task, so the job record shows it."""

    document_id: int
    outcome: str  # completed, failed or skipped
    reason: str = ""
    chunks: int = 0
    attempt: int = 0
    duration_ms: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Claim:
    document_id: int
    token: str
    attempt: int


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_LENGTH]


def _lock(queryset):
    """``select_for_update`` where the database has it; SQLite's IMMEDIATE transactions lock instead."""
    connection = connections[queryset.db]
    if not connection.features.has_select_for_update:
        return queryset
    if connection.vendor == "postgresql":
        # A lock held longer than this is no claim in progress: fail, and the retry tries again.
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{CLAIM_LOCK_TIMEOUT * 1000:.0f}ms"])
    return queryset.select_for_update()


def claim_token_for_this_run() -> str:
    """32 hex digits: the running message's id (28) and attempt (4); random outside a task."""
    job = current_job.get()
    if job is None:
        return uuid.uuid4().hex
    return f"{job.job_id.replace('-', '')[:28]}{min(job.attempt, 0xFFFF):04x}"


def taken_over_from_earlier_attempt(claimed: str, ours: str) -> bool:
    """True when ``claimed`` is the token of an earlier attempt of the message ``ours`` belongs to."""
    return len(claimed) == 32 and claimed[:28] == ours[:28] and int(claimed[28:], 16) < int(ours[28:], 16)


def _claim_void(row: dict, token: str) -> bool:
    """Whether a claim within its lease may be taken anyway: it is an earlier attempt's of this
    message, or the process that made it is gone (SIGKILLed: its message comes back here)."""
    if taken_over_from_earlier_attempt(row["claim_token"], token):
        return True
    try:
        gone = workers.process_is_gone(row["claimed_by"])
    except Exception:  # Redis down: keep to the lease
        logger.warning("Could not tell whether %s is alive; keeping to the lease.", row["claimed_by"], exc_info=True)
        return False
    if gone:
        logger.warning("Document claimed by %s, which is gone: taking the claim back.", row["claimed_by"])
    return gone


def claim_document(document_id: int) -> Claim | ProcessResult:
    """Move the document to ``processing`` for this run, or say why another run has it."""
    lease = timedelta(seconds=get_config().processing_lease_seconds)
    token = claim_token_for_this_run()
    with transaction.atomic():
        row = (
            _lock(Document.objects.filter(pk=document_id))
            .values("status", "status_changed_at", "attempts", "claim_token", "claimed_by")
            .first()
        )
        if row is None:
            return ProcessResult(document_id, SKIPPED, f"document {document_id} no longer exists")
        status, changed_at = row["status"], row["status_changed_at"]
        now = timezone.now()
        if status == DocumentStatus.PROCESSING and changed_at > now - lease and not _claim_void(row, token):
            return ProcessResult(document_id, SKIPPED, f"being processed by another worker since {changed_at:%H:%M:%S}")
        if status not in CLAIMABLE:
            return ProcessResult(document_id, SKIPPED, f"already {status}; nothing changed since")
        attempt = row["attempts"] + 1
        if not Document.objects.claim(document_id, status, changed_at, token, attempt, by=workers.process_identity()):
            return ProcessResult(document_id, SKIPPED, "claimed by another worker")
    return Claim(document_id, token, attempt)


def _load_source(document_id: int) -> tuple[Document, Extracted]:
    config = get_config()
    document = Document.objects.only("pk", "content", "file").filter(pk=document_id).first()
    if document is None:
        raise Document.DoesNotExist(f"document {document_id} no longer exists")
    if document.file:
        try:
            size = document.file.size
        except OSError as exc:
            raise DocumentRejected(f"the uploaded file cannot be read: {describe(exc)}") from exc
        if size > config.max_document_bytes:
            raise DocumentRejected(
                f"too large: the file is {human_bytes(size)}; the limit is {human_bytes(config.max_document_bytes)}"
            )
        with document.file.open("rb") as handle:
            data = handle.read()
        source: str | bytes = data
        filename = document.file.name
    else:
        size = len(document.content.encode("utf-8", "surrogatepass"))
        if size > config.max_document_bytes:
            raise DocumentRejected(
                f"too large: the content is {human_bytes(size)}; the limit is {human_bytes(config.max_document_bytes)}"
            )
        if not document.content:
            raise DocumentRejected("empty: the document has no content and no file")
        source, filename = document.content, ""
    try:
        extracted = extract_text(source, filename)
    except ExtractionError as exc:
        raise DocumentRejected(str(exc)) from exc
    if not extracted.text.strip():
        what = "the file" if document.file else "the content"
        raise DocumentRejected(f"no text: {what} is empty or only whitespace")
    return document, extracted


def _store(claim: Claim, extracted: Extracted, chunks, vectors, embedder_name: str) -> ProcessResult | None:
    """Replace the chunks and complete the document, if the claim still stands. None: it does not."""
    with transaction.atomic():
        current = _lock(Document.objects.filter(pk=claim.document_id)).values_list("claim_token", flat=True).first()
        if current is None:
            return ProcessResult(claim.document_id, SKIPPED, "deleted while it was being processed")
        if current != claim.token:
            return ProcessResult(
                claim.document_id, SKIPPED, "superseded: the document changed or was re-queued during processing"
            )
        DocumentChunk.objects.replace_for(
            claim.document_id,
            (
                DocumentChunk(
                    document_id=claim.document_id,
                    position=chunk.position,
                    text=chunk.text,
                    start_offset=chunk.start,
                    end_offset=chunk.end,
                    token_count=chunk.token_count,
                    embedding=vector_to_bytes(vector),
                )
                for chunk, vector in zip(chunks, vectors, strict=True)
            ),
        )
        Document.objects.mark_completed(
            claim.document_id,
            chunk_count=len(chunks),
            embedder=embedder_name,
            source_format=extracted.format,
            source_encoding=extracted.encoding,
        )
    return None


def _fail(claim: Claim, reason: str) -> bool:
    """Record our claim's failure (only if the claim still stands)."""
    return bool(Document.objects.mark_failed(claim.document_id, claim.token, reason))


def _hand_back(claim: Claim, reason: str) -> bool:
    """Give our claim back as queued, for a retry or the sweeper (only if it still stands)."""
    return bool(Document.objects.hand_back(claim.document_id, claim.token, reason))


def _run(claim: Claim) -> ProcessResult:
    config = get_config()
    stage = "extraction"
    try:
        _, extracted = _load_source(claim.document_id)
        stage = "chunking"
        chunks = chunk_text(extracted.text, config.chunk_size, config.chunk_overlap)
        stage = "embedding"
        embedder = get_embedder()
        vectors = embed_texts([chunk.text for chunk in chunks], embedder, config.embedding_batch_size)
        stage = "storing"
        skipped = _store(claim, extracted, chunks, vectors, embedder.name)
    except Document.DoesNotExist:
        return ProcessResult(claim.document_id, SKIPPED, "deleted while it was being processed", attempt=claim.attempt)
    except DocumentRejected as exc:
        _fail(claim, str(exc))
        return ProcessResult(claim.document_id, FAILED, str(exc), attempt=claim.attempt)
    except Exception as exc:
        reason = f"{stage} failed: {describe(exc)}"
        if is_transient(exc):
            if claim.attempt < config.max_attempts:
                _hand_back(claim, f"attempt {claim.attempt} {reason}; retrying")
                raise TransientError(f"document {claim.document_id}: {reason}") from exc
            reason = f"gave up after {claim.attempt} attempts: {reason}"
        logger.exception("Document %s failed: %s", claim.document_id, reason)
        _fail(claim, reason)
        return ProcessResult(claim.document_id, FAILED, reason, attempt=claim.attempt)
    if skipped is not None:
        skipped.attempt = claim.attempt
        return skipped
    return ProcessResult(claim.document_id, COMPLETED, chunks=len(chunks), attempt=claim.attempt)


def process_document(document_id: int) -> ProcessResult:
    """Claim and process one document; safe to call any number of times, from any number of workers."""
    document_id = int(document_id)
    started = time.monotonic()
    claim = claim_document(document_id)
    if isinstance(claim, Claim):
        try:
            result = _run(claim)
        except TimeLimitExceeded:
            _fail(claim, "interrupted: processing exceeded the task's time limit")
            raise
        except Interrupt:
            # Worker shutting down: hand the document back so a retry or the sweeper picks it up.
            _hand_back(claim, "interrupted by a worker shutdown; will be processed again")
            raise
    else:
        result = claim
    result.duration_ms = int((time.monotonic() - started) * 1000)
    level = logging.WARNING if result.outcome == FAILED else logging.INFO
    logger.log(
        level, "Document %s %s in %d ms%s", document_id, result.outcome, result.duration_ms,
        f": {result.reason}" if result.reason else f" ({result.chunks} chunks)",
    )  # fmt: skip
    return result
