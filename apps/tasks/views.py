"""Plain views of the task layer (the JSON job API lives in api.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.tasks.access import bearer_token_matches
from apps.tasks.config import get_task_config
from apps.tasks.health import OK, get_task_health


@never_cache
@require_GET
def task_health(request: HttpRequest) -> JsonResponse:
    """For load balancers and probes: 200 when healthy, 503 otherwise. Anonymous callers get only
    the status; staff, or a caller with ``TASK_CONFIG.metrics_token`` as bearer token, get the full
    report (hosts, pids, queues, Redis), secrets masked."""
    report = get_task_health()
    status = 200 if report["status"] == OK else 503
    if not may_see_topology(request):
        return JsonResponse({"status": report["status"]}, status=status)
    return JsonResponse(report, status=status)


def may_see_topology(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = get_task_config().metrics_token
    return bool(token) and bearer_token_matches(request, token)


def metrics(request: HttpRequest) -> HttpResponse:
    """``/metrics`` for Prometheus (apps.tasks.metrics); prometheus_client, the ``[metrics]`` extra,
    is imported only here, so a project without it can still include the app's URLs."""
    from apps.tasks.metrics import metrics_view

    return metrics_view(request)
