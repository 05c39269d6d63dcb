"""Django admin for job records (the monitoring pages build on this)."""

from __future__ import annotations

from django.contrib import admin, messages

from apps.tasks.models import JobRecord
from apps.tasks.services.records import retry_jobs


@admin.register(JobRecord)
class JobRecordAdmin(admin.ModelAdmin):
    list_display = ("message_id", "actor_name", "queue_name", "status", "attempts", "enqueued_at", "duration_ms")
    list_filter = ("status", "queue_name", "actor_name", "enqueued_at")
    search_fields = ("=message_id", "actor_name")
    date_hierarchy = None
    show_full_result_count = False
    readonly_fields = [field.name for field in JobRecord._meta.fields]
    actions = ["retry_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry selected jobs", permissions=["change"])
    def retry_selected(self, request, queryset) -> None:
        retried, refused = retry_jobs(queryset.values_list("message_id", flat=True))
        if retried:
            self.message_user(request, f"Retried {len(retried)} job(s).", messages.SUCCESS)
        for message_id, reason in refused.items():
            self.message_user(request, f"{message_id}: {reason}", messages.WARNING)
