"""Django admin: job records (filters, search, retry, requeue) and the "Queues & workers" page."""

from __future__ import annotations

from collections.abc import Callable

import dramatiq
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.tasks.discovery import import_task_modules
from apps.tasks.health import get_task_health
from apps.tasks.models import TERMINAL_STATUSES, JobRecord, JobStatus, QueuesAndWorkers
from apps.tasks.services import control, dead_letters, queues
from apps.tasks.services.dashboard import dashboard_data, describe_actor_limits
from apps.tasks.services.records import display_actor, record_queues, retry_jobs

#: The list never counts past this: COUNT(*) over a million rows is what makes admin lists slow.
COUNT_CAP = 10_000
#: An id prefix shorter than this would match most of the table.
MIN_ID_PREFIX = 4
ERROR_SEARCH = "error:"

#: actor name → function(record) giving (label, url) of what the job worked on, or None; see register_job_link.
_job_links: dict[str, Callable[[JobRecord], tuple[str, str] | None]] = {}


def register_job_link(actor_name: str, link: Callable[[JobRecord], tuple[str, str] | None]) -> None:
    """Let an app link its jobs to their object: the job's detail page shows ``link(record)``
    (a label and a URL), as knowbase does for a document's processing jobs."""
    _job_links[actor_name] = link


#: Actions on every record matching the list's filters, and the statuses each applies to.
BULK_LABELS = {
    "retry": "Retry all matching",
    "cancel": "Cancel all matching",
    "requeue": "Requeue all matching dead letters",
    "delete": "Delete all matching",
}
BULK_STATUSES = {
    "retry": TERMINAL_STATUSES,
    "cancel": (JobStatus.PENDING, JobStatus.RETRYING),
    "requeue": (JobStatus.DEAD_LETTER,),
    "delete": (),
}
BULK_BATCH = 500


def format_duration(milliseconds: int | None) -> str:
    """A duration as people read it: "-", "<1 ms", "250 ms", "3.2 s", "4 min 05 s"."""
    if milliseconds is None:
        return "-"
    if milliseconds < 1:
        return "<1 ms"
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f} s"
    minutes, seconds = divmod(milliseconds // 1000, 60)
    return f"{minutes} min {seconds:02d} s"


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (an index-backed LIMIT subquery), never the whole table."""

    @cached_property
    def count(self) -> int:
        query = self.object_list.order_by().values("pk")[: COUNT_CAP + 1]
        return query.count()


class QueueFilter(admin.SimpleListFilter):
    """The configured queues, not a SELECT DISTINCT over every record."""

    title = "queue"
    parameter_name = "queue_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in record_queues()]

    def queryset(self, request, queryset):
        return queryset.filter(queue_name=self.value()) if self.value() else queryset


class FirstArgumentFilter(admin.SimpleListFilter):
    """``?first_arg=5`` keeps the jobs whose first argument is 5 (with ``actor_name``, a scan of that
    actor's jobs only), so an app can link an object to its jobs; shown only while it is in use."""

    title = "first argument"
    parameter_name = "first_arg"

    def lookups(self, request, model_admin):
        value = request.GET.get(self.parameter_name)
        return [(value, value)] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(args__0=int(value) if value.lstrip("-").isdigit() else value)


class ActorFilter(admin.SimpleListFilter):
    """The actors declared by the discovered task modules."""

    title = "actor"
    parameter_name = "actor_name"

    def lookups(self, request, model_admin):
        import_task_modules()
        return [(name, name) for name in sorted(dramatiq.get_broker().get_declared_actors())]

    def queryset(self, request, queryset):
        return queryset.filter(actor_name=self.value()) if self.value() else queryset


@admin.register(JobRecord)
class JobRecordAdmin(admin.ModelAdmin):
    list_display = (
        "message_id", "backend", "actor", "queue_name", "status_badge", "attempts", "enqueued", "duration",
        "last_error",
    )  # fmt: skip
    list_filter = ("status", "backend", QueueFilter, ActorFilter, "enqueued_at", FirstArgumentFilter)
    search_fields = ("=message_id", "=actor_name")
    search_help_text = (
        f"A job id, or its first {MIN_ID_PREFIX}+ characters; an exact actor name; or "
        f"'{ERROR_SEARCH}text' for the jobs whose error type or message contains the text (any case; "
        "reads every failed record, so combine it with a filter on a large table)."
    )
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50
    ordering = ("-enqueued_at",)
    actions = ["retry_selected", "cancel_selected", "requeue_dead_letters", "delete_selected"]
    change_list_template = "admin/dramatiq_tasks/jobrecord/change_list.html"
    fieldsets = (
        (None, {"fields": ("message_id", "backend", "actor_name", "queue_name", "status", "attempts", "worker")}),
        ("Arguments", {"fields": ("args", "kwargs", "args_complete", "result")}),
        (
            "Times",
            {"fields": ("enqueued_at", "started_at", "finished_at", "duration_ms", "next_retry_at", "updated_at")},
        ),
        ("Last failure", {"fields": ("error_type", "error_message", "traceback_block")}),
        ("Related", {"fields": ("related",)}),
    )

    def get_search_results(self, request, queryset, search_term):
        """An id or its prefix, an exact actor name (indexed, where the admin's default iexact scans the
        table), or ``error:text`` in the error type or message of records that have one."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.lower().startswith(ERROR_SEARCH):
            text = term[len(ERROR_SEARCH) :].strip()
            if not text:
                return queryset, False
            has_error = queryset.exclude(error_type="", error_message="")
            return has_error.filter(Q(error_type__icontains=text) | Q(error_message__icontains=text)), False
        matches = Q(message_id=term) | Q(actor_name=term)
        if len(term) >= MIN_ID_PREFIX:
            matches |= Q(message_id__startswith=term)
        return queryset.filter(matches), False

    @cached_property
    def readonly_fields(self):
        return [field.name for field in JobRecord._meta.fields] + ["traceback_block", "related"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, record: JobRecord) -> str:
        colours = {
            JobStatus.COMPLETED: "#2e7d32", JobStatus.DEAD_LETTER: "#c62828", JobStatus.FAILED: "#c62828",
            JobStatus.CANCELLED: "#757575", JobStatus.SKIPPED: "#757575",
        }  # fmt: skip
        return format_html(
            '<b style="color:{}" title="{}">{}</b>',
            colours.get(record.status, "inherit"), record.status, record.get_status_display(),
        )  # fmt: skip

    @admin.display(description="enqueued", ordering="enqueued_at")
    def enqueued(self, record: JobRecord) -> str:
        return timezone.localtime(record.enqueued_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, record: JobRecord) -> str:
        return format_duration(record.duration_ms)

    @admin.display(description="last error")
    def last_error(self, record: JobRecord) -> str:
        if not record.error_type and not record.error_message:
            return "-"
        first_line = (record.error_message or "").strip().splitlines()[0] if record.error_message.strip() else ""
        shown = first_line if len(first_line) <= 80 else first_line[:79] + "…"
        return format_html("<code>{}</code> {}", record.error_type.rsplit(".", 1)[-1], shown)

    @admin.display(description="actor", ordering="actor_name")
    def actor(self, record: JobRecord) -> str:
        return display_actor(record)

    @admin.display(description="links")
    def related(self, record: JobRecord) -> str:
        """The job a retry of this one sent, the job this one retried, and what the job worked on."""
        links = []
        if record.retried_as:
            links.append(("Retried as job", self._job_url(record.retried_as), record.retried_as))
        retry_of = JobRecord.objects.filter(retried_as=record.pk).values_list("pk", flat=True).first()
        if retry_of:
            links.append(("A retry of job", self._job_url(retry_of), retry_of))
        link = _job_links.get(record.actor_name)
        target = link(record) if link else None
        if target:
            links.append(("Worked on", target[1], target[0]))
        if not links:
            return "-"
        return format_html_join(mark_safe("<br>"), '{} <a href="{}" class="job-link">{}</a>', links)

    @staticmethod
    def _job_url(job_id: str) -> str:
        return reverse("admin:dramatiq_tasks_jobrecord_change", args=[job_id])

    @admin.display(description="traceback")
    def traceback_block(self, record: JobRecord) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", record.traceback or "-")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Records are written by the system; "change" is kept as the permission for retrying.
        return super().has_change_permission(request, obj) and obj is None

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("dramatiq_tasks.change_jobrecord")

    @admin.action(description="Retry selected jobs", permissions=["retry"])
    def retry_selected(self, request, queryset) -> None:
        retried, refused = retry_jobs(queryset.values_list("message_id", flat=True))
        if retried:
            self.message_user(request, f"Retried {len(retried)} job(s).", messages.SUCCESS)
        for message_id, reason in refused.items():
            self.message_user(request, f"{message_id}: {reason}", messages.WARNING)

    # Deleting a dead letter's record deletes the dead letter in Redis too: counts stay in step.
    def delete_model(self, request, obj) -> None:
        self._delete_dead_letters([obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        self._delete_dead_letters(queryset.filter(status=JobStatus.DEAD_LETTER))
        super().delete_queryset(request, queryset)

    def _delete_dead_letters(self, records) -> None:
        for record in records:
            if record.status != JobStatus.DEAD_LETTER:
                continue
            try:
                dead_letters.delete_dead_letter(record.message_id, record.queue_name)
            except (LookupError, ValueError):
                pass  # expired, requeued or deleted already: nothing left in Redis

    @admin.action(description="Cancel selected pending or delayed jobs", permissions=["retry"])
    def cancel_selected(self, request, queryset) -> None:
        by = f"{request.user.get_username()} (admin)"
        cancelled, refused = control.cancel_jobs(list(queryset.values_list("message_id", flat=True)), by=by)
        if cancelled:
            self.message_user(request, f"Cancelled {len(cancelled)} job(s).", messages.SUCCESS)
        for message_id, reason in refused.items():
            self.message_user(request, f"{message_id}: {reason}", messages.WARNING)

    @admin.action(description="Requeue selected dead letters", permissions=["retry"])
    def requeue_dead_letters(self, request, queryset) -> None:
        requeued = 0
        for record in queryset.filter(status=JobStatus.DEAD_LETTER):
            try:
                dead_letters.requeue_dead_letter(record.message_id, record.queue_name)
                requeued += 1
            except (LookupError, ValueError) as exc:
                self.message_user(request, f"{record.message_id}: {exc}", messages.WARNING)
        self.message_user(request, f"Requeued {requeued} dead letter(s).", messages.SUCCESS)

    # --- the "Queues & workers" page ---------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name="tasks_dashboard"),
            path("dashboard/data/", wrap(self.dashboard_data_view), name="tasks_dashboard_data"),
            path("dashboard/clear/<str:queue>/", wrap(self.clear_queue_view), name="tasks_clear_queue"),
            path("dashboard/pause/<str:queue>/", wrap(self.pause_queue_view), name="tasks_pause_queue"),
            path("dashboard/requeue/<str:queue>/", wrap(self.requeue_queue_view), name="tasks_requeue_dead_letters"),
            path("bulk/<str:action>/", wrap(self.bulk_view), name="tasks_bulk"),
            path("<path:object_id>/retry/", wrap(self.retry_job_view), name="tasks_retry_job"),
            path("<path:object_id>/cancel/", wrap(self.cancel_job_view), name="tasks_cancel_job"),
            path("<path:object_id>/abort/", wrap(self.abort_job_view), name="tasks_abort_job"),
            path("dashboard/resume/<str:queue>/", wrap(self.resume_queue_view), name="tasks_resume_queue"),
            *super().get_urls(),
        ]

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def dashboard_view(self, request: HttpRequest):
        self._require_view(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Queues & workers",
            "data": dashboard_data(get_task_health()),
            # Only buttons that would not answer 403: view-only users see figures, no controls.
            "can_control": self.has_retry_permission(request),
            "can_clear": settings.DEBUG and self.has_delete_permission(request),
            "data_url": reverse("admin:tasks_dashboard_data"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/dramatiq_tasks/dashboard.html", context)

    def dashboard_data_view(self, request: HttpRequest) -> JsonResponse:
        self._require_view(request)
        return JsonResponse(dashboard_data(get_task_health()))

    # --- actions on every record matching the filters, not only a page ------------------------

    def changelist_view(self, request, extra_context=None):
        extra = {"can_bulk": self.has_retry_permission(request), "bulk_actions": BULK_LABELS.items()}
        actor_name = request.GET.get(ActorFilter.parameter_name)
        if actor_name:  # why an actor's jobs wait: its limits, above its jobs
            extra["actor_limits"] = describe_actor_limits(actor_name)
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def bulk_view(self, request: HttpRequest, action: str):
        """GET: how many records the current filters match (and how many the action applies to);
        POST: do it to all of them."""
        if action not in BULK_LABELS:
            raise Http404(f"no bulk action {action!r}")
        if not self.has_retry_permission(request) or (action == "delete" and not self.has_delete_permission(request)):
            raise PermissionDenied
        queryset = self.get_changelist_instance(request).get_queryset(request)
        applicable = queryset.filter(status__in=BULK_STATUSES[action]) if BULK_STATUSES[action] else queryset
        back_url = reverse("admin:dramatiq_tasks_jobrecord_changelist") + (
            f"?{request.GET.urlencode()}" if request.GET else ""
        )
        if request.method == "POST":
            done, refused = self._bulk(request, action, applicable)
            self.message_user(request, f"{BULK_LABELS[action]}: {done} done.", messages.SUCCESS)
            for message_id, reason in list(refused.items())[:20]:
                self.message_user(request, f"{message_id}: {reason}", messages.WARNING)
            return redirect(back_url)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        context = {
            **self.admin_site.each_context(request),
            "title": f"{BULK_LABELS[action]}?",
            "label": BULK_LABELS[action],
            "count": queryset.count(),
            "applicable": applicable.count(),
            "filters": ", ".join(f"{key}={value}" for key, value in request.GET.items()),
            "back_url": back_url,
        }
        return TemplateResponse(request, "admin/dramatiq_tasks/bulk_confirm.html", context)

    def _bulk(self, request: HttpRequest, action: str, queryset) -> tuple[int, dict[str, str]]:
        by = f"{request.user.get_username()} (admin, bulk)"
        done, refused = 0, {}
        ids = list(queryset.values_list("message_id", flat=True))
        for start in range(0, len(ids), BULK_BATCH):
            batch = ids[start : start + BULK_BATCH]
            if action == "retry":
                retried, failed = retry_jobs(batch)
                done, refused = done + len(retried), {**refused, **failed}
            elif action == "cancel":
                cancelled, failed = control.cancel_jobs(batch, by=by)
                done, refused = done + len(cancelled), {**refused, **failed}
            elif action == "requeue":
                for record in JobRecord.objects.filter(message_id__in=batch):
                    try:
                        dead_letters.requeue_dead_letter(record.message_id, record.queue_name)
                        done += 1
                    except (LookupError, ValueError) as exc:
                        refused[record.message_id] = str(exc)
            else:
                chunk = JobRecord.objects.filter(message_id__in=batch)
                self.delete_queryset(request, chunk)
                done += len(batch)
        return done, refused

    # --- the detail page's Retry, Cancel and Abort ------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            "can_control": self.has_retry_permission(request),
            "retryable": [str(status) for status in TERMINAL_STATUSES],
            "cancellable": [JobStatus.PENDING.value, JobStatus.RETRYING.value],
            "abortable": [JobStatus.RUNNING.value],
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def retry_job_view(self, request: HttpRequest, object_id: str):
        """GET asks (a completed job runs again), POST retries and opens the job it became."""
        if not self.has_retry_permission(request):
            raise PermissionDenied
        record = JobRecord.objects.filter(pk=object_id).first()
        if record is None:
            raise Http404(f"no job {object_id!r}")
        if request.method == "GET":
            context = {**self.admin_site.each_context(request), "title": f"Retry job {record.pk}?",
                       "record": record, "actor": display_actor(record)}  # fmt: skip
            return TemplateResponse(request, "admin/dramatiq_tasks/retry_confirm.html", context)
        if request.method != "POST":
            return HttpResponseNotAllowed(["GET", "POST"])
        retried, refused = retry_jobs([record.pk])
        if refused:
            self.message_user(request, refused[record.pk], messages.WARNING)
            return redirect("admin:dramatiq_tasks_jobrecord_change", record.pk)
        self.message_user(request, f"Retried {record.pk} as {retried[0]}.", messages.SUCCESS)
        return redirect(reverse("admin:dramatiq_tasks_jobrecord_change", args=[retried[0]]))

    def cancel_job_view(self, request: HttpRequest, object_id: str):
        return self._job_control(request, object_id, control.cancel_job, "Cancelled {}.")

    def abort_job_view(self, request: HttpRequest, object_id: str):
        return self._job_control(
            request, object_id, control.abort_job, "Asked the worker to abort {}: it ends cancelled once it has."
        )

    def _job_control(self, request: HttpRequest, object_id: str, operation, done: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_retry_permission(request):
            raise PermissionDenied
        try:
            operation(object_id, by=f"{request.user.get_username()} (admin)")
            self.message_user(request, done.format(object_id), messages.SUCCESS)
        except control.CannotCancel as exc:
            self.message_user(request, str(exc), messages.WARNING)
        except JobRecord.DoesNotExist:
            raise Http404(f"no job {object_id!r}") from None
        return redirect("admin:dramatiq_tasks_jobrecord_change", object_id)

    def requeue_queue_view(self, request: HttpRequest, queue: str):
        """POST: requeue every dead letter of a queue."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_retry_permission(request):
            raise PermissionDenied
        try:
            requeued = dead_letters.requeue_all(queue)
            self.message_user(request, f"Requeued {len(requeued)} dead letter(s) of {queue!r}.", messages.SUCCESS)
        except dead_letters.UnknownQueueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return redirect("admin:tasks_dashboard")

    def pause_queue_view(self, request: HttpRequest, queue: str):
        return self._queue_control(request, queue, pause=True)

    def resume_queue_view(self, request: HttpRequest, queue: str):
        return self._queue_control(request, queue, pause=False)

    def _queue_control(self, request: HttpRequest, queue: str, *, pause: bool):
        """POST only, for who may retry (change permission)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_retry_permission(request):
            raise PermissionDenied
        by = f"{request.user.get_username()} (admin)"
        try:
            if pause:
                control.pause_queue(queue, by=by)
                self.message_user(request, f"Paused {queue!r}: workers fetch nothing until resumed.", messages.SUCCESS)
            else:
                control.resume_queue(queue, by=by)
                self.message_user(request, f"Resumed {queue!r}.", messages.SUCCESS)
        except dead_letters.UnknownQueueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return redirect("admin:tasks_dashboard")

    def clear_queue_view(self, request: HttpRequest, queue: str):
        """DEBUG only; GET asks for confirmation, POST purges."""
        if not settings.DEBUG or not self.has_delete_permission(request):
            raise PermissionDenied
        try:
            dead_letters.check_queue(queue)
        except dead_letters.UnknownQueueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:tasks_dashboard")
        if request.method == "POST":
            removed = queues.purge_queue(queue)
            self.message_user(request, f"Cleared {removed} message(s) from {queue!r}.", messages.SUCCESS)
            return redirect("admin:tasks_dashboard")
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        context = {**self.admin_site.each_context(request), "title": f"Clear queue {queue}?", "queue": queue}
        return TemplateResponse(request, "admin/dramatiq_tasks/clear_queue_confirm.html", context)


@admin.register(QueuesAndWorkers)
class QueuesAndWorkersAdmin(admin.ModelAdmin):
    """Puts "Queues & workers" on the admin index, for whoever may view job records."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("dramatiq_tasks.view_jobrecord")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        return redirect("admin:tasks_dashboard")
