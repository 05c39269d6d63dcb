"""Model signal handlers: queue a document when its source changes; remove its file when it goes."""

from __future__ import annotations

from django.db import transaction

from apps.knowbase.models import Document
from apps.knowbase.services.dispatch import schedule_processing


def queue_changed_document(sender, instance: Document, raw: bool = False, using: str = "default", **kwargs) -> None:
    """post_save: a created document or a changed source is sent after the commit, exactly once.

    ``Document.save`` decides (``needs_processing``); workers write with ``QuerySet.update`` and never
    come here. Fixture loading (``raw``) leaves the document pending for the sweeper.
    """
    if raw or not instance.needs_processing:
        return
    instance.needs_processing = False
    schedule_processing(instance.pk, using=using)


def delete_stored_file(sender, instance: Document, using: str = "default", **kwargs) -> None:
    """post_delete: remove the uploaded file once the deletion is committed."""
    if not instance.file:
        return
    storage, name = instance.file.storage, instance.file.name
    transaction.on_commit(lambda: storage.delete(name), using=using, robust=True)
