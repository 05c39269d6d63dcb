"""The document admin: list, change page with read-only chunks, validation, the reprocess action."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.knowbase.models import Document, DocumentStatus
from apps.knowbase.services.processing import process_document
from tests.helpers import wait_for

from .conftest import messages_for


@pytest.mark.django_db
def test_list_and_change_page_show_status_chunks_and_errors(admin_client):
    done = Document.objects.create(title="Done", content="First paragraph.\n\nSecond paragraph.")
    process_document(done.pk)
    broken = Document.objects.create(title="Broken", content="   ")
    process_document(broken.pk)

    page = admin_client.get(reverse("admin:knowbase_document_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Completed" in text and "Failed" in text and "no text: the content is empty" in text

    page = admin_client.get(reverse("admin:knowbase_document_change", args=[done.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "First paragraph." in text and "384" in text  # chunk text and vector dimensions, read-only
    assert "<textarea" not in text.split('id="chunks-group"')[1]  # chunks are not editable
    assert 'name="chunks-MAX_NUM_FORMS" value="0"' in text  # and none can be added


@pytest.mark.django_db
def test_admin_form_refuses_oversized_content(admin_client, settings):
    settings.KNOWBASE_MAX_DOCUMENT_BYTES = 100
    page = admin_client.post(
        reverse("admin:knowbase_document_add"),
        {"title": "Too big", "content": "x" * 101, "source": "", "chunks-TOTAL_FORMS": "0",
         "chunks-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert page.status_code == 200
    assert "documents are limited to 100 bytes" in page.content.decode()
    assert not Document.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_reprocess_action_queues_the_selected_documents(admin_client, broker_redis, clean_queues):
    document = Document.objects.create(title="Again", content="Reprocess me.")
    process_document(document.pk)
    response = admin_client.post(
        reverse("admin:knowbase_document_changelist"),
        {"action": "reprocess", "_selected_action": [document.pk]},
        follow=True,
    )
    assert "1 documents sent to the knowledge queue." in response.content.decode()
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.QUEUED
    assert messages_for(broker_redis, document.pk) == 2


@pytest.mark.django_db(transaction=True)
def test_a_document_links_to_its_jobs_and_each_job_to_its_document(admin_client, broker_redis, clean_queues):
    from apps.tasks.models import JobRecord

    document = Document.objects.create(title="Linked", content="Text to process.")
    other = Document.objects.create(title="Other", content="Other text.")
    for doc in (document, other):
        process_document(doc.pk)
    admin_client.post(
        reverse("admin:knowbase_document_changelist"), {"action": "reprocess", "_selected_action": [document.pk]}
    )

    def jobs_of(doc: Document) -> set[str]:
        return set(
            JobRecord.objects.filter(actor_name="process_document_async", args=[doc.pk]).values_list("pk", flat=True)
        )

    # Sent with the document row as the outbox: their pending records follow through the recorder.
    wait_for(lambda: len(jobs_of(document)) == 2 and len(jobs_of(other)) == 1, timeout=10, message="the job records")
    jobs = jobs_of(document)  # saved, then reprocessed

    page = admin_client.get(reverse("admin:knowbase_document_change", args=[document.pk])).content.decode()
    for job_id in jobs:
        assert reverse("admin:dramatiq_tasks_jobrecord_change", args=[job_id]) in page
    all_jobs = page.split('id="all-jobs"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    listed = admin_client.get(all_jobs).content.decode()
    assert all(f">{job_id}<" in listed for job_id in jobs)
    (other_job,) = jobs_of(other)
    assert f">{other_job}<" not in listed

    job_page = admin_client.get(
        reverse("admin:dramatiq_tasks_jobrecord_change", args=[next(iter(jobs))])
    ).content.decode()
    assert f'Worked on <a href="{reverse("admin:knowbase_document_change", args=[document.pk])}"' in job_page
