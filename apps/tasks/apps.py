from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "apps.tasks"
    label = "dramatiq_tasks"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # django_dramatiq's Task admin stays empty here (its AdminMiddleware is not used): hide it.
        from django.contrib import admin
        from django_dramatiq.models import Task

        from apps.tasks import checks  # noqa: F401  (registers the system checks)

        if admin.site.is_registered(Task):
            admin.site.unregister(Task)
