"""The processor in-process: chunks and vectors, claims, idempotent replays, every bad input."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from apps.knowbase.models import Document, DocumentChunk, DocumentStatus
from apps.knowbase.services import processing
from apps.knowbase.services.dispatch import request_reprocessing
from apps.knowbase.services.processing import Claim, claim_document, process_document
from apps.tasks.errors import TransientError

from .embedders import EXPLODES

pytestmark = pytest.mark.django_db

TEXT = "\n\n".join(
    f"Paragraph {index} talks about topic {index}. It has a second sentence about item {index}." for index in range(12)
)


def make(content: str = TEXT, **fields) -> Document:
    return Document.objects.create(title=fields.pop("title", "Doc"), content=content, **fields)


def upload(data: bytes, name: str) -> Document:
    document = Document(title=name)
    document.file = ContentFile(data, name=name)
    document.save()
    return document


def test_processing_stores_chunks_with_offsets_and_normalised_embeddings(settings):
    settings.KNOWBASE_CHUNK_SIZE = 200
    settings.KNOWBASE_CHUNK_OVERLAP = 50
    document = make()
    result = process_document(document.pk)
    document.refresh_from_db()
    chunks = list(document.chunks.all())
    assert (result.outcome, result.chunks, result.attempt) == ("completed", len(chunks), 1)
    assert (document.status, document.chunk_count, document.error) == (DocumentStatus.COMPLETED, len(chunks), "")
    assert (document.embedder, document.source_format, document.attempts) == ("hashing-384-v1", "text", 1)
    assert document.processed_at is not None and document.claim_token == ""
    assert len(chunks) > 3
    for chunk in chunks:
        assert TEXT[chunk.start_offset : chunk.end_offset] == chunk.text
        assert len(chunk.text) <= 200 and chunk.token_count > 0
        assert chunk.vector.shape == (384,)
        assert np.isclose(np.linalg.norm(chunk.vector), 1.0)


def test_a_replay_is_skipped_and_a_reprocess_replaces_chunks_without_duplicates():
    document = make()
    process_document(document.pk)
    before = list(DocumentChunk.objects.filter(document=document).values_list("position", "text", "embedding"))

    replay = process_document(document.pk)
    assert (replay.outcome, replay.reason) == ("skipped", "already completed; nothing changed since")

    request_reprocessing([document.pk])  # in this test's transaction the message waits for a commit
    assert process_document(document.pk).outcome == "completed"
    after = list(DocumentChunk.objects.filter(document=document).values_list("position", "text", "embedding"))
    assert [(p, t, bytes(e)) for p, t, e in after] == [(p, t, bytes(e)) for p, t, e in before]


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: make(""), "empty: the document has no content and no file"),
        (lambda: make("  \n\t \n "), "no text: the content is empty or only whitespace"),
        (lambda: upload(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "scan.png"), "binary content: the upload is a"),
        (lambda: upload(b"\x00\x01binary\x00" * 100, "data.txt"), "binary content"),
        (lambda: upload(b"caf\x81 and \x8d are no text " * 20, "notes.txt"), "undecodable text: invalid UTF-8"),
        (lambda: upload(b"<html><script>x()</script></html>", "empty.html"), "no text: the file is empty"),
        (lambda: make(f"Some text {EXPLODES} here."), "embedding failed: RuntimeError: scripted backend failure"),
    ],
    ids=["empty", "whitespace", "png", "nul-bytes", "invalid-utf8", "html-without-text", "embedder-raises"],
)
def test_bad_input_fails_with_a_reason_and_spares_other_documents(settings, build, reason):
    settings.KNOWBASE_EMBEDDER = "tests.knowbase.embedders.ScriptedEmbedder"
    bad, good = build(), make("A good document about queues.")
    result = process_document(bad.pk)
    bad.refresh_from_db()
    assert result.outcome == "failed" and result.reason.startswith(reason)
    assert (bad.status, bad.error, bad.chunk_count) == (DocumentStatus.FAILED, result.reason, 0)
    assert process_document(good.pk).outcome == "completed"


def test_latin1_upload_is_decoded_and_completes():
    document = upload("Crème brûlée à la carte.\n".encode("cp1252"), "menu.txt")
    assert process_document(document.pk).outcome == "completed"
    document.refresh_from_db()
    assert document.source_encoding == "cp1252"
    assert document.chunks.get().text == "Crème brûlée à la carte."


def test_html_upload_is_indexed_as_text():
    document = upload(b"<html><body><h1>Title</h1><p>Body &amp; soul.</p></body></html>", "page.html")
    process_document(document.pk)
    assert Document.objects.get(pk=document.pk).source_format == "html"
    assert document.chunks.get().text == "Title\n\nBody & soul."


def test_a_document_above_the_limit_at_processing_time_fails(settings):
    settings.KNOWBASE_MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
    document = make("word " * (4 * 1024 * 1024))  # 20 MiB, accepted under the raised limit
    settings.KNOWBASE_MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
    result = process_document(document.pk)
    assert result.reason == "too large: the content is 20.0 MiB; the limit is 5.0 MiB"
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.FAILED


def test_a_missing_or_deleted_document_is_skipped(monkeypatch):
    assert process_document(10**9).reason == f"document {10**9} no longer exists"

    document = make()
    original = processing.embed_texts

    def delete_then_embed(*args, **kwargs):
        Document.objects.filter(pk=document.pk).delete()
        return original(*args, **kwargs)

    monkeypatch.setattr(processing, "embed_texts", delete_then_embed)
    result = process_document(document.pk)
    assert (result.outcome, result.reason) == ("skipped", "deleted while it was being processed")
    assert not DocumentChunk.objects.exists()


def test_a_change_during_processing_wins_over_the_stale_result(monkeypatch):
    document = make("old text")
    original = processing.embed_texts

    def edit_then_embed(*args, **kwargs):
        fresh = Document.objects.get(pk=document.pk)
        fresh.content = "new text"
        fresh.save()
        return original(*args, **kwargs)

    monkeypatch.setattr(processing, "embed_texts", edit_then_embed)
    result = process_document(document.pk)
    assert result.outcome == "skipped" and result.reason.startswith("superseded")
    document.refresh_from_db()
    assert (document.status, document.chunk_count) == (DocumentStatus.QUEUED, 0)  # the change's own message
    monkeypatch.undo()
    assert process_document(document.pk).outcome == "completed"
    assert document.chunks.get().text == "new text"


def test_transient_errors_requeue_for_a_retry_then_fail_after_max_attempts(settings, monkeypatch):
    settings.KNOWBASE_MAX_ATTEMPTS = 2
    document = make()

    def unreachable(*args, **kwargs):
        raise ConnectionError("embedding service unreachable")

    monkeypatch.setattr(processing, "embed_texts", unreachable)
    with pytest.raises(TransientError):
        process_document(document.pk)
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert document.error == "attempt 1 embedding failed: ConnectionError: embedding service unreachable; retrying"
    result = process_document(document.pk)
    assert result.outcome == "failed"
    assert result.reason == "gave up after 2 attempts: embedding failed: ConnectionError: embedding service unreachable"


def test_a_fresh_claim_blocks_others_and_an_abandoned_one_is_taken_over(settings):
    document = make()
    claim = claim_document(document.pk)
    assert isinstance(claim, Claim)
    other = claim_document(document.pk)
    assert other.outcome == "skipped" and "being processed by another worker" in other.reason
    settings.KNOWBASE_PROCESSING_LEASE_SECONDS = 60
    Document.objects.filter(pk=document.pk).update(status_changed_at=timezone.now() - timedelta(seconds=61))
    takeover = claim_document(document.pk)
    assert isinstance(takeover, Claim) and takeover.attempt == 2
    # The abandoned claim's late result is discarded.
    assert processing._fail(claim, "late") is False


def test_a_retry_of_the_same_message_takes_back_a_claim_its_failed_attempt_left(monkeypatch):
    from django.db import OperationalError

    from apps.tasks.logging import JobContext, current_job

    document = make(content="")  # rejected: the outcome is one write, which the database refuses once
    real_fail = processing._fail
    refusals = iter([OperationalError("database is locked")])

    def fail_once_refused(*args, **kwargs):
        error = next(refusals, None)
        if error is not None:
            raise error
        return real_fail(*args, **kwargs)

    def run_as(message_id: str, attempt: int):
        token = current_job.set(JobContext(message_id, "process_document_async", "knowledge", attempt))
        try:
            return process_document(document.pk)
        finally:
            current_job.reset(token)

    monkeypatch.setattr(processing, "_fail", fail_once_refused)
    message_id = "0b6f4a3e-5d1c-4f7e-9a8b-1c2d3e4f5a6b"
    with pytest.raises(OperationalError):
        run_as(message_id, 1)
    document.refresh_from_db()
    assert (document.status, document.claim_token) == (DocumentStatus.PROCESSING, "0b6f4a3e5d1c4f7e9a8b1c2d3e4f0001")

    # Another message, and a redelivery of the same attempt, find the claim fresh and leave it alone ...
    assert run_as("99999999-5d1c-4f7e-9a8b-1c2d3e4f5a6b", 1).outcome == "skipped"
    assert run_as(message_id, 1).outcome == "skipped"
    # ... while the retry of the message that claimed it takes it back and records the outcome.
    result = run_as(message_id, 2)
    document.refresh_from_db()
    assert (result.outcome, result.attempt) == ("failed", 2)
    assert (document.status, document.claim_token) == (DocumentStatus.FAILED, "")
    assert document.error.startswith("empty: the document has no content")


def test_an_id_that_is_not_an_integer_is_a_permanent_error():
    with pytest.raises(ValueError):
        process_document("not-a-number")


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_let_exactly_one_win():
    document = make()
    contenders = 4
    barrier = threading.Barrier(contenders)
    results: list = []

    def contend() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(claim_document(document.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [result for result in results if isinstance(result, Claim)]
    assert len(results) == contenders and len(winners) == 1
    assert all(result.outcome == "skipped" for result in results if not isinstance(result, Claim))
    assert Document.objects.get(pk=document.pk).attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_locked_by_someone_else_is_waited_for_not_skipped():
    """The dispatcher marking a document queued (or an admin edit) locks its row for a moment; a
    claim that skipped it then would spend the document's only message and leave it queued."""
    from django.db import transaction

    from tests.helpers import wait_for

    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers (this suite runs on both)")
    document = make()
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Document.objects.select_for_update().get(pk=document.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert locked.wait(timeout=30)
    results: list = []
    claimer = threading.Thread(target=lambda: (results.append(claim_document(document.pk)), connection.close()))
    claimer.start()
    try:
        with connection.cursor() as cursor:

            def claim_is_waiting() -> bool:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                return cursor.fetchone()[0] >= 1

            wait_for(claim_is_waiting, timeout=30, message="the claim to wait for the row lock")
    finally:
        release.set()
        holder.join(timeout=30)
        claimer.join(timeout=30)
    assert len(results) == 1 and isinstance(results[0], Claim), results
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.PROCESSING


def test_a_claim_whose_process_is_gone_is_taken_back_within_its_lease(settings):
    """A worker SIGKILLed while processing: its redelivered message must not wait for the lease."""
    import socket
    import subprocess
    import sys

    settings.KNOWBASE_PROCESSING_LEASE_SECONDS = 900
    document = make()
    assert isinstance(claim_document(document.pk), Claim)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    Document.objects.filter(pk=document.pk).update(claimed_by=f"{socket.gethostname()}:{int(gone.stdout)}@w-dead")

    takeover = claim_document(document.pk)

    assert isinstance(takeover, Claim) and takeover.attempt == 2
    row = Document.objects.get(pk=document.pk)
    assert row.status == DocumentStatus.PROCESSING and row.claimed_by.startswith(f"{socket.gethostname()}:")
    # This process is alive: its own fresh claim still blocks another run.
    assert claim_document(document.pk).outcome == "skipped"
