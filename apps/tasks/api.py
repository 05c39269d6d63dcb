"""JSON job-status API for staff: list with filters and pages, detail, retry.

Every answer is JSON, errors included: bad ids and pages (400, checked before the database sees
them), methods (405 with ``Allow``), authentication (401/403) and CSRF failures (403, through
``csrf_failure``, which ``TASK_CONFIG.merge_into`` sets as ``CSRF_FAILURE_VIEW``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import Resolver404, resolve
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt

from apps.tasks.access import bearer_token_matches
from apps.tasks.config import get_task_config
from apps.tasks.errors import UnknownQueueError
from apps.tasks.masking import mask_text
from apps.tasks.models import JobRecord
from apps.tasks.services import control, records

BEARER_ACTOR = "api token"
_CSRF = CsrfViewMiddleware(lambda request: None)
DEFAULT_PAGE_SIZE = 50
#: What the job list understands; anything else is a 400 (a typo must not silently list everything).
LIST_PARAMETERS = frozenset({"status", "queue", "actor", "backend", "since", "until", "ordering", "page", "page_size"})
#: A job id: what message ids and Temporal workflow ids are made of, at most the column's 64 characters.
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


def error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def methods(*allowed: str) -> Callable:
    """Like ``require_http_methods``, with a JSON 405 naming the allowed methods."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if request.method not in allowed:
                response = error(405, f"method {request.method} not allowed", allowed=list(allowed))
                response["Allow"] = ", ".join(allowed)
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def valid_job_id(view: Callable) -> Callable:
    """A 400 for an id no job can have (NUL, control characters, too long), before any query."""

    @wraps(view)
    def wrapped(request: HttpRequest, job_id: str, *args, **kwargs):
        if not JOB_ID.fullmatch(job_id):
            return error(400, "not a job id: letters, digits and . _ : @ - only, at most 64 characters")
        return view(request, job_id, *args, **kwargs)

    return wrapped


def csrf_failure(request: HttpRequest, reason: str = "") -> object:
    """CSRF_FAILURE_VIEW: JSON for the API, Django's own page elsewhere."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        match = None
    if match is not None and match.namespace == "tasks" and match.url_name.startswith("job-"):
        hint = "send the csrftoken cookie's value as X-CSRFToken"
        return error(403, f"CSRF verification failed: {reason}", hint=hint)
    return django_csrf_failure(request, reason=reason)


def staff_json(permission: str) -> Callable:
    """Active staff with ``permission`` (their session, CSRF-checked for writes), or a script with
    ``TASK_CONFIG.api_token`` as bearer token; others get a JSON 401/403, never a redirect."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt  # a bearer token carries no CSRF cookie; sessions are checked below
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            token = get_task_config().api_token
            if token and request.headers.get("Authorization", "").lower().startswith("bearer "):
                if not bearer_token_matches(request, token):
                    return error(401, "invalid API token")
                request.task_actor = BEARER_ACTOR
                return view(request, *args, **kwargs)
            user = request.user
            if not user.is_authenticated:
                return error(401, "authentication required")
            if not (user.is_active and user.is_staff and user.has_perm(permission)):
                return error(403, "staff permission required", permission=permission)
            rejected = _CSRF.process_view(request, None, (), {})
            if rejected is not None:
                return rejected  # CSRF_FAILURE_VIEW: JSON for the API (csrf_failure above)
            request.task_actor = user.get_username()
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def who(request: HttpRequest) -> str:
    """Who acts, for the record: the staff user, or the API token."""
    return f"{getattr(request, 'task_actor', '') or request.user.get_username()} (api)"


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise records.InvalidFilter(f"{name} must be an integer, not {raw!r}") from None


@methods("GET")
@staff_json("dramatiq_tasks.view_jobrecord")
def job_list(request: HttpRequest) -> JsonResponse:
    try:
        page = _int_param(request, "page", 1)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE)
        unknown = sorted(set(request.GET) - LIST_PARAMETERS)
        if unknown:
            raise records.InvalidFilter(
                f"unknown parameter(s): {', '.join(unknown)}; valid: {', '.join(sorted(LIST_PARAMETERS))}"
            )
        queryset = records.filter_records(
            **{name: request.GET.get(name) or None for name in LIST_PARAMETERS - {"page", "page_size"}}
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


@methods("GET")
@staff_json("dramatiq_tasks.view_jobrecord")
@valid_job_id
def job_detail(request: HttpRequest, job_id: str) -> JsonResponse:
    record = JobRecord.objects.filter(message_id=job_id).first()
    if record is None:
        return error(404, f"no job {job_id!r}")
    return JsonResponse(records.record_as_dict(record, detail=True))


@methods("POST")
@staff_json("dramatiq_tasks.change_jobrecord")
@valid_job_id
def job_retry(request: HttpRequest, job_id: str) -> JsonResponse:
    try:
        new_id = records.retry_job(job_id)
    except JobRecord.DoesNotExist:
        return error(404, f"no job {job_id!r}")
    except records.CannotRetry as exc:
        return error(409, str(exc))
    except Exception as exc:  # broker down, corrupt dead letter: say so, as JSON
        return error(503, mask_text(f"retry failed: {type(exc).__name__}: {exc}"))
    return JsonResponse({"job_id": new_id, "retried": job_id}, status=202)


@methods("POST")
@staff_json("dramatiq_tasks.change_jobrecord")
@valid_job_id
def job_cancel(request: HttpRequest, job_id: str) -> JsonResponse:
    """Cancel a pending or delayed job: 200, 404, or 409 with the reason (running, finished...)."""
    outcome = _control(request, job_id, "cancel", control.cancel_job)
    if isinstance(outcome, JsonResponse):
        return outcome
    return JsonResponse({"job_id": job_id, "cancelled": True, "how": outcome})


@methods("POST")
@staff_json("dramatiq_tasks.change_jobrecord")
@valid_job_id
def job_abort(request: HttpRequest, job_id: str) -> JsonResponse:
    """Ask the worker running a job to interrupt it (after ``grace`` seconds, if given): 202 (the
    record ends cancelled once the worker has), 404, 400, or 409 with the reason (not running...)."""
    try:
        grace = float(request.POST.get("grace", 0) or 0)
    except ValueError:
        return error(400, "grace must be a number of seconds")
    if not 0 <= grace <= 3600:
        return error(400, "grace must be between 0 and 3600 seconds")
    failure = _control(request, job_id, "abort", control.abort_job, grace_seconds=grace)
    if isinstance(failure, JsonResponse):
        return failure
    return JsonResponse({"job_id": job_id, "abort_requested": True, "grace_seconds": grace}, status=202)


def _control(request: HttpRequest, job_id: str, verb: str, operation, **options: Any) -> Any:
    """``operation(job_id, by=, reason=, **options)``'s result, or the JSON error saying why not:
    404 (no such job), 409 (refused: running, finished...), 503 (the broker is down)."""
    try:
        return operation(job_id, by=who(request), reason=str(request.POST.get("reason", ""))[:500], **options)
    except JobRecord.DoesNotExist:
        return error(404, f"no job {job_id!r}")
    except control.CannotCancel as exc:
        return error(409, str(exc))
    except Exception as exc:  # broker down: say so, as JSON
        return error(503, mask_text(f"{verb} failed: {type(exc).__name__}: {exc}"))


@methods("POST")
@staff_json("dramatiq_tasks.change_jobrecord")
def queue_pause(request: HttpRequest, queue: str) -> JsonResponse:
    """Pause a queue in every worker (consumers fetch nothing; enqueue goes on)."""
    try:
        name = control.pause_queue(queue, by=who(request))
    except UnknownQueueError as exc:
        return error(404, str(exc))
    return JsonResponse({"queue": name, "paused": True})


@methods("POST")
@staff_json("dramatiq_tasks.change_jobrecord")
def queue_resume(request: HttpRequest, queue: str) -> JsonResponse:
    try:
        resumed = control.resume_queue(queue, by=who(request))
    except UnknownQueueError as exc:
        return error(404, str(exc))
    return JsonResponse({"queue": queue, "paused": False, "was_paused": resumed})
