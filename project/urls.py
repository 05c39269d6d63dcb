from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # The task layer's pages: /tasks/api/jobs/, /health/tasks/, /metrics (see apps.tasks.urls).
    path("", include("apps.tasks.urls")),
]
