"""django-dramatiq's rundramatiq, with processes, threads, queues and shutdown timeout from TASK_CONFIG.

By default a worker consumes the configured queues and every queue a discovered actor declares
(as django-dramatiq does), and says which; ``--queues`` names must be among those.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django_dramatiq.management.commands.rundramatiq import Command as BaseCommand

from apps.tasks.config import get_task_config
from apps.tasks.discovery import import_task_modules


class Command(BaseCommand):
    help = "Runs Dramatiq workers; defaults come from TASK_CONFIG.dramatiq."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        dramatiq_config = get_task_config().dramatiq
        parser.set_defaults(
            processes=dramatiq_config.processes,
            threads=dramatiq_config.threads,
            worker_shutdown_timeout=dramatiq_config.worker_shutdown_timeout_ms,
        )

    def handle(self, *args: Any, queues: list[str] | None = None, **options: Any) -> None:
        config = get_task_config()
        if not config.enabled:
            raise CommandError("Tasks are disabled (TASK_CONFIG.enabled is False): no worker to run.")
        configured = list(config.dramatiq.queues)
        declared = [name for name in declared_queues() if name not in configured]
        if queues:
            unknown = [name for name in queues if name not in configured and name not in declared]
            if unknown:
                also = f"; declared by actors: {', '.join(declared)}" if declared else ""
                raise CommandError(
                    f"Unknown queue(s): {', '.join(unknown)}. Configured queues: {', '.join(configured)}{also}."
                )
        else:
            queues = configured + declared
            also = f" (declared by actors, not in TASK_CONFIG: {', '.join(declared)})" if declared else ""
            self.stdout.write(f"Consuming queues: {', '.join(queues)}{also}.")
        self._announce_schedules(config)
        super().handle(*args, queues=queues, **options)

    def _announce_schedules(self, config) -> None:
        if not config.schedules:
            return
        names = ", ".join(f"{entry.name} ({entry.cron})" for entry in config.schedules)
        if config.schedules_in_workers:
            self.stdout.write(f"Schedules sent by these workers: {names}.")
        else:
            self.stderr.write(
                f"WARNING: TASK_CONFIG.schedules_in_workers is off, so these workers send no schedules: nothing "
                f"sends {names} unless `manage.py runscheduler` runs."
            )
        self.stdout.flush()


def declared_queues() -> list[str]:
    """The queues the discovered actors declare (delay queues left out), sorted."""
    import dramatiq
    from dramatiq.common import q_name

    import_task_modules()
    return sorted({q_name(name) for name in dramatiq.get_broker().get_declared_queues()})
