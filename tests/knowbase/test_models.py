"""Saving documents: validation, change detection, exactly one message per change, Redis down."""

from __future__ import annotations

import hashlib
import logging
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.knowbase.models import Document, DocumentStatus
from apps.knowbase.services.processing import process_document
from apps.tasks.models import JobStatus
from apps.tasks.records import wait_until_flushed

from .conftest import job_records_for, messages_for, redis_unreachable

MIB = 1024 * 1024


@pytest.mark.django_db(transaction=True)
def test_one_create_sends_exactly_one_message_and_processing_sends_none(broker_redis, clean_queues):
    with CaptureQueriesContext(connection) as queries:
        document = Document.objects.create(title="Queues", content="Redis keeps the queue of messages.")
    # Saved as queued in its one write: no second (durable) write once the message is sent.
    assert [query["sql"].split()[0] for query in queries.captured_queries if "knowbase_document" in query["sql"]] == [
        "INSERT"
    ]
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED and document.queued_at == document.status_changed_at
    assert document.content_hash == hashlib.sha256(b"Redis keeps the queue of messages.").hexdigest()
    assert messages_for(broker_redis, document.pk) == 1
    # The document row is the outbox: the job record follows the send through the recorder.
    assert wait_until_flushed()
    assert [record.status for record in job_records_for(document.pk)] == [JobStatus.PENDING]

    # The processor's own writes never queue the document again: no loop.
    assert process_document(document.pk).outcome == "completed"
    assert messages_for(broker_redis, document.pk) == 1
    assert len(job_records_for(document.pk)) == 1


@pytest.mark.django_db(transaction=True)
def test_only_a_content_change_queues_again(broker_redis, clean_queues):
    document = Document.objects.create(title="Doc", content="first version")
    process_document(document.pk)

    document.title = "Renamed"
    document.save()
    document.save(update_fields=["title"])
    Document.objects.get(pk=document.pk).save()
    assert messages_for(broker_redis, document.pk) == 1
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.COMPLETED

    document.content = "second version"
    document.save()
    assert messages_for(broker_redis, document.pk) == 2
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.QUEUED

    loaded = Document.objects.get(pk=document.pk)
    loaded.content = "third version"
    loaded.save(update_fields=["content"])  # the reset fields are saved along with it
    loaded.refresh_from_db()
    assert (loaded.status, loaded.content_hash) == (DocumentStatus.QUEUED, hashlib.sha256(b"third version").hexdigest())
    assert messages_for(broker_redis, document.pk) == 3


@pytest.mark.django_db(transaction=True)
def test_the_message_is_sent_on_commit_and_never_for_a_rollback(broker_redis, clean_queues):
    with transaction.atomic():
        document = Document.objects.create(title="Later", content="sent at commit")
        assert messages_for(broker_redis, document.pk) == 0
        assert Document.objects.get(pk=document.pk).status == DocumentStatus.QUEUED  # the message follows the commit
    assert messages_for(broker_redis, document.pk) == 1

    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = Document.objects.create(title="Never", content="rolled back")
        raise RuntimeError("roll back")
    assert messages_for(broker_redis, rolled_back.pk) == 0
    assert not job_records_for(rolled_back.pk)


@pytest.mark.django_db(transaction=True)
def test_uploaded_file_is_the_source_and_is_removed_with_the_document(broker_redis, clean_queues, knowbase_media_root):
    data = b"# Notes\n\nUploaded text."
    document = Document(title="Upload")
    document.file = ContentFile(data, name="notes.md")
    document.save()
    assert document.content_hash == hashlib.sha256(data).hexdigest()
    stored = knowbase_media_root / document.file.name
    assert stored.read_bytes() == data

    same = Document.objects.get(pk=document.pk)
    same.file = ContentFile(data, name="notes-again.md")  # same bytes: nothing to redo
    same.save()
    assert messages_for(broker_redis, document.pk) == 1
    same.file = ContentFile(b"# Notes\n\nNew text.", name="notes.md")
    same.save()
    assert messages_for(broker_redis, document.pk) == 2

    Document.objects.get(pk=document.pk).delete()
    assert not (knowbase_media_root / same.file.name).exists()


@pytest.mark.django_db
def test_documents_above_the_size_limit_are_refused_at_save(settings):
    twenty_mb = "x" * (20 * MIB)
    with pytest.raises(ValidationError, match=r"20\.0 MiB; documents are limited to 5\.0 MiB"):
        Document(title="Huge", content=twenty_mb).save()
    with pytest.raises(ValidationError, match="limited to"):
        upload = Document(title="Huge upload")
        upload.file = ContentFile(twenty_mb.encode(), name="huge.txt")
        upload.save()
    settings.KNOWBASE_MAX_DOCUMENT_BYTES = 1000
    with pytest.raises(ValidationError) as caught:
        Document(title="Just over", content="é" * 501).full_clean()
    assert "content" in caught.value.message_dict
    Document(title="Just under", content="é" * 500).save()
    assert Document.objects.count() == 1


@pytest.mark.django_db
def test_content_that_cannot_be_stored_is_refused_at_save():
    with pytest.raises(ValidationError, match="NUL characters"):
        Document(title="Binary", content="abc\x00def").save()
    with pytest.raises(ValidationError, match="not valid Unicode"):
        Document(title="Surrogate", content="abc\ud800def").save()
    assert not Document.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_save_with_redis_unreachable_keeps_the_document_pending_until_the_sweeper_sends_it(
    broker_redis, clean_queues, caplog
):
    caplog.set_level(logging.ERROR, logger="apps.knowbase")
    with redis_unreachable():
        document = Document.objects.create(title="Outage", content="saved while Redis is down")
        document.refresh_from_db()
        assert document.status == DocumentStatus.PENDING
        assert document.error.startswith("not queued yet: enqueue failed")
        assert any("stays pending" in record.getMessage() for record in caplog.records)
        [record] = job_records_for(document.pk)
        assert record.status == JobStatus.PENDING and "EnqueueError" in record.error_type
        with pytest.raises(CommandError, match="broker refused"):
            call_command("knowbase_sweep", "--older-than", "0", stdout=StringIO())
        assert Document.objects.get(pk=document.pk).status == DocumentStatus.PENDING
    assert messages_for(broker_redis, document.pk) == 0

    out = StringIO()
    call_command("knowbase_sweep", "--older-than", "0", stdout=out)
    assert "1 pending. Re-sent 1." in out.getvalue()
    document.refresh_from_db()
    assert (document.status, document.error) == (DocumentStatus.QUEUED, "")
    assert messages_for(broker_redis, document.pk) == 1
