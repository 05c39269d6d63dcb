"""Plain views of the task layer (the JSON job API lives in api.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.tasks.health import OK, get_task_health


@never_cache
@require_GET
def task_health(request: HttpRequest) -> JsonResponse:
    """For load balancers and probes: 200 when healthy, 503 otherwise; no secrets in the body."""
    report = get_task_health()
    return JsonResponse(report, status=200 if report["status"] == OK else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """``/metrics`` for Prometheus (apps.tasks.metrics); prometheus_client, the ``[metrics]`` extra,
    is imported only here, so a project without it can still include the app's URLs."""
    from apps.tasks.metrics import metrics_view

    return metrics_view(request)
