from django.apps import AppConfig


class KnowbaseConfig(AppConfig):
    name = "apps.knowbase"
    label = "knowbase"
    verbose_name = "Knowledge base"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from . import signals
        from .models import Document

        post_save.connect(signals.queue_changed_document, sender=Document, dispatch_uid="knowbase.queue_changed")
        post_delete.connect(signals.delete_stored_file, sender=Document, dispatch_uid="knowbase.delete_file")
