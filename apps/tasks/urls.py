from django.urls import path

from apps.tasks import api

app_name = "tasks"

urlpatterns = [
    path("api/jobs/", api.job_list, name="job-list"),
    path("api/jobs/<str:job_id>/", api.job_detail, name="job-detail"),
    path("api/jobs/<str:job_id>/retry/", api.job_retry, name="job-retry"),
]
