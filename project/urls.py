from django.contrib import admin
from django.urls import include, path

from apps.tasks.views import task_health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("tasks/", include("apps.tasks.urls")),
    path("health/tasks/", task_health, name="task-health"),
]
