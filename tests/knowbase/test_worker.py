"""Knowbase end to end: real ``rundramatiq`` subprocesses on the knowledge queue, real Redis, the test database."""

from __future__ import annotations

import uuid
from io import StringIO

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from apps.knowbase.models import Document, DocumentStatus
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobStatus
from tests.helpers import wait_for

from .conftest import WORKER_ARGS, job_records_for, redis_unreachable, wait_for_document, wait_until_ready, worker_env
from .embedders import EXPLODES, SLOW

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MIB = 1024 * 1024


@pytest.fixture
def worker(knowledge_worker, clean_queues):
    """The module's shared worker, on emptied queues."""
    return knowledge_worker


def finished_records(document_id: int, count: int, timeout: float = 30) -> list:
    """The job records of a document once ``count`` of them are finished (the worker flushes records every 100 ms)."""

    def done():
        records = job_records_for(document_id)
        finished = [record for record in records if record.status == JobStatus.COMPLETED]
        return records if len(records) == count and len(finished) == count else None

    return wait_for(done, timeout=timeout, message=f"{count} finished jobs for document {document_id}")


def test_a_created_document_is_processed_and_only_content_changes_reprocess_it(worker):
    document = Document.objects.create(title="Queues", content="Redis keeps the queue.\n\nWorkers take messages.")
    done = wait_for_document(document.pk, worker=worker)
    assert (done.status, done.chunk_count, done.error) == (DocumentStatus.COMPLETED, 1, "")
    chunk = done.chunks.get()
    assert chunk.text == "Redis keeps the queue.\n\nWorkers take messages."
    assert np.isclose(np.linalg.norm(chunk.vector), 1.0) and chunk.vector.shape == (384,)
    [record] = finished_records(document.pk, 1)  # exactly one message for one create: no loop
    assert record.result["outcome"] == "completed" and record.queue_name == "knowledge"
    assert "returned a value that is not None" not in worker.log()  # the record keeps the value

    document.content = "Redis keeps the queue.\n\nWorkers take messages.\n\nPostgreSQL keeps the documents."
    document.save()
    updated = wait_for_document(document.pk, statuses=("completed",), worker=worker, timeout=60)
    wait_for(lambda: updated.chunks.filter(text__contains="PostgreSQL").exists(), timeout=30)
    assert len(finished_records(document.pk, 2)) == 2

    document.title = "Queues and documents"
    document.save()
    assert len(job_records_for(document.pk)) == 2  # no message for a save without a content change
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.COMPLETED


def test_two_workers_racing_on_one_document_process_it_once(worker, start_worker, knowbase_media_root):
    second = wait_until_ready(start_worker(*WORKER_ARGS, env=worker_env(knowbase_media_root)))
    document = Document.objects.create(title="Contended", content=f"A slow document. {SLOW}")
    for _ in range(3):  # three duplicates of the message the save sent: four deliveries race
        enqueue("process_document_async", args=(document.pk,))
    records = finished_records(document.pk, 4, timeout=60)
    outcomes = sorted(record.result["outcome"] for record in records)
    assert outcomes == ["completed", "skipped", "skipped", "skipped"], [record.result for record in records]
    for record in records:
        if record.result["outcome"] == "skipped":
            assert "another worker" in record.result["reason"] or "already completed" in record.result["reason"]
    assert {record.worker.rsplit(":", 1)[0] for record in records}  # host:pid of each delivery
    assert len({record.worker for record in records}) == 2, "both workers took part"
    document.refresh_from_db()
    assert (document.status, document.attempts, document.chunks.count()) == (DocumentStatus.COMPLETED, 1, 1)
    assert second.process.poll() is None


def test_saved_while_redis_is_down_then_the_sweeper_sends_it_and_it_completes(worker):
    with redis_unreachable():
        document = Document.objects.create(title="Outage", content="Saved while Redis was unreachable.")
    document.refresh_from_db()
    assert document.status == DocumentStatus.PENDING and document.error.startswith("not queued yet")
    out = StringIO()
    call_command("knowbase_sweep", "--older-than", "0", stdout=out)
    assert "Re-sent 1." in out.getvalue()
    done = wait_for_document(document.pk, worker=worker)
    assert (done.status, done.chunk_count) == (DocumentStatus.COMPLETED, 1)


def test_bad_inputs_end_in_clear_states_and_the_worker_keeps_going(worker, settings):
    settings.KNOWBASE_MAX_DOCUMENT_BYTES = 25 * MIB  # let a 20 MB document in; the worker's limit is 5 MiB

    def upload(name: str, data: bytes) -> Document:
        document = Document(title=name)
        document.file = ContentFile(data, name=name)
        document.save()
        return document

    expected = {
        Document.objects.create(title="empty", content="").pk: "empty: the document has no content and no file",
        Document.objects.create(title="blank", content=" \n\t\n ").pk: "no text: the content is empty or only",
        upload("scan.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).pk: "binary content: the upload is a PNG",
        upload("notes.txt", b"caf\x81 and \x8d are no text " * 10).pk: "undecodable text: invalid UTF-8 byte 0x81",
        Document.objects.create(title="huge", content="word " * (4 * MIB)).pk: "too large: the content is 20.0 MiB",
        Document.objects.create(title="model", content=f"text {EXPLODES}").pk: "embedding failed: RuntimeError",
    }
    latin1 = upload("menu.txt", "Crème brûlée.\n".encode("cp1252"))
    good = Document.objects.create(title="good", content="A good document.")
    for document_id, reason in expected.items():
        failed = wait_for_document(document_id, worker=worker, timeout=90)
        assert failed.status == DocumentStatus.FAILED and failed.error.startswith(reason), (failed.title, failed.error)
        assert failed.chunk_count == 0
    decoded = wait_for_document(latin1.pk, worker=worker)
    assert (decoded.status, decoded.source_encoding) == ("completed", "cp1252")
    assert decoded.chunks.get().text == "Crème brûlée."
    assert wait_for_document(good.pk, worker=worker).status == DocumentStatus.COMPLETED
    assert worker.process.poll() is None
    # Failures were recorded on the documents; no message went to the dead letter queue.
    assert all(record.status == JobStatus.COMPLETED for pk in expected for record in finished_records(pk, 1))


def test_a_message_outliving_its_document_is_skipped(worker):
    document = Document.objects.create(title="Short-lived", content="Deleted before its last message.")
    wait_for_document(document.pk, worker=worker)
    document_id = document.pk
    document.delete()
    message_id = enqueue("process_document_async", args=(document_id,))

    def finished():
        record = next((r for r in job_records_for(document_id) if r.message_id == message_id), None)
        return record if record is not None and record.status == JobStatus.COMPLETED else None

    record = wait_for(finished, timeout=30)
    assert record.result["outcome"] == "skipped"
    assert record.result["reason"] == f"document {document_id} no longer exists"


def test_a_transient_backend_error_is_retried(worker):
    document = Document.objects.create(title="Flaky", content=f"Flaky backend EMBEDDER-FLAKY-{uuid.uuid4().hex}")
    done = wait_for_document(document.pk, statuses=("completed",), worker=worker, timeout=60)
    assert (done.attempts, done.error) == (2, "")
    [record] = finished_records(document.pk, 1)
    assert record.attempts == 2 and "TransientError" in record.error_type


def test_ingest_wait_and_demo_commands(worker, tmp_path):
    (tmp_path / "a.md").write_text("# Alpha\n\nAlpha paragraph.")
    (tmp_path / "b.txt").write_text("Beta paragraph.")
    (tmp_path / "c.txt").write_bytes(b"caf\x81 and \x8d are no text " * 10)
    out = StringIO()
    call_command("knowbase_ingest", str(tmp_path), "--wait", "--timeout", "60", stdout=out, stderr=StringIO())
    assert "3 created" in out.getvalue() and "Processed: 2 completed, 1 failed." in out.getvalue()
    assert f"failed {(tmp_path / 'c.txt').resolve()}: undecodable text: invalid UTF-8 byte 0x81" in out.getvalue()

    out = StringIO()
    call_command("knowbase_demo", "--timeout", "60", stdout=out)
    text = out.getvalue()
    assert "completed, " in text and "chunks" in text and "Best chunk for" in text
    call_command("knowbase_demo", "--timeout", "60", stdout=StringIO())  # a second run reprocesses the same one
    assert Document.objects.filter(source="sample:knowbase-intro.md").count() == 1
