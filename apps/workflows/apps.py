from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The section reports nothing while Temporal is disabled; temporalio is imported only when it is on.
        from apps.tasks.health import register_health_section
        from apps.tasks.services.dashboard import register_worker_source
        from apps.tasks.services.records import register_record_queues
        from apps.workflows.config import temporal_record_queues
        from apps.workflows.health import dashboard_workers, temporal_health

        register_health_section("temporal", temporal_health)
        register_worker_source("temporal", dashboard_workers)
        register_record_queues(temporal_record_queues)
