"""The base of commands an operator runs and reads (``tasks``, ``task_health``, ``knowbase_ingest`` …)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.tasks.logging import quiet_console


class OperatorCommand(BaseCommand):
    """A command whose output is its answer: the services' INFO log lines ("Job … cancelled by …")
    stay off the terminal while it runs, warnings and errors still reach stderr. ``-v 2`` or more
    shows the INFO lines again (for debugging a command)."""

    def execute(self, *args: Any, **options: Any) -> Any:
        if options.get("verbosity", 1) >= 2:
            return super().execute(*args, **options)
        with quiet_console():
            return super().execute(*args, **options)
