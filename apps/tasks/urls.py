"""The app's pages, for one ``path("", include("apps.tasks.urls"))`` in a project's URLconf: the JSON
job API (``tasks/api/``), the health probe (``health/tasks/``) and Prometheus' ``metrics``. The admin
pages come with ``admin.site.urls``."""

from django.urls import path

from apps.tasks import api, views

app_name = "tasks"

urlpatterns = [
    path("tasks/api/jobs/", api.job_list, name="job-list"),
    path("tasks/api/jobs/<str:job_id>/", api.job_detail, name="job-detail"),
    path("tasks/api/jobs/<str:job_id>/retry/", api.job_retry, name="job-retry"),
    path("tasks/api/jobs/<str:job_id>/cancel/", api.job_cancel, name="job-cancel"),
    path("tasks/api/jobs/<str:job_id>/abort/", api.job_abort, name="job-abort"),
    path("tasks/api/queues/<str:queue>/pause/", api.queue_pause, name="queue-pause"),
    path("tasks/api/queues/<str:queue>/resume/", api.queue_resume, name="queue-resume"),
    path("health/tasks/", views.task_health, name="health"),
    # Prometheus scrapes /metrics (its default path); 404 unless TASK_CONFIG.metrics_enabled.
    path("metrics", views.metrics, name="metrics"),
]
