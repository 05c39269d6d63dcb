"""JSON job-status API for staff: list with filters and pages, detail, retry."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from apps.tasks.models import JobRecord
from apps.tasks.services import records

DEFAULT_PAGE_SIZE = 50


def error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def staff_json(permission: str) -> Callable:
    """Only active staff with ``permission``; others get a JSON 401/403, never a redirect."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return error(401, "authentication required")
            if not (user.is_active and user.is_staff and user.has_perm(permission)):
                return error(403, "staff permission required", permission=permission)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise records.InvalidFilter(f"{name} must be an integer, not {raw!r}") from None


@require_GET
@staff_json("dramatiq_tasks.view_jobrecord")
def job_list(request: HttpRequest) -> JsonResponse:
    try:
        page = _int_param(request, "page", 1)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE)
        queryset = records.filter_records(
            status=request.GET.get("status") or None,
            queue=request.GET.get("queue") or None,
            actor=request.GET.get("actor") or None,
            backend=request.GET.get("backend") or None,
        )
        rows, has_next = records.page_of(queryset, page, page_size)
    except records.InvalidFilter as exc:
        return error(400, str(exc))
    return JsonResponse(
        {
            "results": [records.record_as_dict(row) for row in rows],
            "page": page,
            "page_size": page_size,
            "has_next": has_next,
        }
    )


@require_GET
@staff_json("dramatiq_tasks.view_jobrecord")
def job_detail(request: HttpRequest, job_id: str) -> JsonResponse:
    record = JobRecord.objects.filter(message_id=job_id).first()
    if record is None:
        return error(404, f"no job {job_id!r}")
    return JsonResponse(records.record_as_dict(record, detail=True))


@require_POST
@staff_json("dramatiq_tasks.change_jobrecord")
def job_retry(request: HttpRequest, job_id: str) -> JsonResponse:
    try:
        new_id = records.retry_job(job_id)
    except JobRecord.DoesNotExist:
        return error(404, f"no job {job_id!r}")
    except records.CannotRetry as exc:
        return error(409, str(exc))
    except Exception as exc:  # broker down, corrupt dead letter: say so, as JSON
        return error(503, f"retry failed: {type(exc).__name__}: {exc}")
    return JsonResponse({"job_id": new_id, "retried": job_id}, status=202)
