"""Documents in the admin: status, chunk count, error, a reprocess action, chunks read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from apps.tasks.admin import format_duration, register_job_link
from apps.tasks.models import JobRecord

from .models import Document, DocumentChunk
from .services.dispatch import PROCESS_ACTOR, request_reprocessing

#: The change page lists a document's latest processing jobs; the link beside them lists all.
RECENT_JOBS = 5

#: The change page shows the first chunks only: a large document has thousands.
INLINE_CHUNKS = 50


class DocumentChunkInline(admin.TabularInline):
    model = DocumentChunk
    fields = ("position", "text_preview", "start_offset", "end_offset", "token_count", "dimensions")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = f"chunks (the first {INLINE_CHUNKS})"

    def get_queryset(self, request: HttpRequest) -> QuerySet[DocumentChunk]:
        chunks = super().get_queryset(request).filter(position__lt=INLINE_CHUNKS)
        return chunks.defer("embedding").annotate(embedding_bytes=Length("embedding"))

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="text")
    def text_preview(self, chunk: DocumentChunk) -> str:
        return Truncator(" ".join(chunk.text.split())).chars(300)

    @admin.display(description="dimensions")
    def dimensions(self, chunk: DocumentChunk) -> int:
        return (chunk.embedding_bytes or 0) // 4  # float32 values


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "status", "chunk_count", "short_error", "source_format", "updated_at")
    list_filter = ("status", "source_format", "embedder")
    search_fields = ("title", "source")
    readonly_fields = (
        "status",
        "error",
        "chunk_count",
        "attempts",
        "content_hash",
        "embedder",
        "source_format",
        "source_encoding",
        "created_at",
        "updated_at",
        "status_changed_at",
        "queued_at",
        "processed_at",
        "jobs",
    )
    fieldsets = (
        (None, {"fields": ("title", "content", "file", "source")}),
        ("Processing", {"fields": readonly_fields}),
    )
    inlines = [DocumentChunkInline]
    actions = ["reprocess"]

    @admin.display(description="jobs")
    def jobs(self, document: Document) -> str:
        """The document's latest processing jobs, each linked to its job record, and a link to all."""
        if document.pk is None:
            return "-"
        recent = JobRecord.objects.filter(actor_name=PROCESS_ACTOR, args__0=document.pk).order_by("-enqueued_at")
        rows = [
            (reverse("admin:dramatiq_tasks_jobrecord_change", args=[job.pk]), job.pk, job.get_status_display(),
             format_duration(job.duration_ms))
            for job in recent[:RECENT_JOBS]
        ]  # fmt: skip
        every = (
            reverse("admin:dramatiq_tasks_jobrecord_changelist")
            + "?"
            + urlencode({"actor_name": PROCESS_ACTOR, "first_arg": document.pk})
        )
        listed = format_html_join(mark_safe("<br>"), '<a href="{}" class="job-link">{}</a> {} ({})', rows)
        return format_html(
            '{}<br><a href="{}" id="all-jobs">all jobs of this document</a>', listed or "none yet", every
        )

    @admin.display(description="error")
    def short_error(self, document: Document) -> str:
        return Truncator(document.error).chars(80)

    @admin.action(description="Reprocess the selected documents")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        sent, not_sent = request_reprocessing(ids)
        if sent:
            self.message_user(request, f"{sent} documents sent to the knowledge queue.", messages.SUCCESS)
        if not_sent:
            self.message_user(
                request,
                f"{not_sent} documents could not be queued (is Redis up?); they stay pending for the sweeper.",
                messages.WARNING,
            )


def _document_of(record: JobRecord) -> tuple[str, str] | None:
    """The document a processing job worked on (its first argument)."""
    if not record.args or not isinstance(record.args[0], int):
        return None
    return f"document {record.args[0]}", reverse("admin:knowbase_document_change", args=[record.args[0]])


register_job_link(PROCESS_ACTOR, _document_of)
