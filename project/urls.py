from django.contrib import admin
from django.urls import include, path

from apps.tasks.metrics import metrics_view
from apps.tasks.views import task_health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("tasks/", include("apps.tasks.urls")),
    path("health/tasks/", task_health, name="task-health"),
    # Prometheus scrapes /metrics (its default path); 404 unless TASKS_METRICS is on.
    path("metrics", metrics_view, name="task-metrics"),
]
