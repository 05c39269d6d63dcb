"""The document admin: list, change page with read-only chunks, validation, the reprocess action."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.knowbase.models import Document, DocumentStatus
from apps.knowbase.services.processing import process_document

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
