"""Move the tasks app's migration history from its old label ``tasks`` to ``dramatiq_tasks``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS

from apps.tasks.checks import LABEL, LEGACY_LABEL, adopt_legacy_label


class Command(BaseCommand):
    help = (
        f"Once, on a database migrated before the app's label became {LABEL!r}: records its migrations "
        f"and content type under the new label (the table keeps its name). Safe to run again."
    )
    requires_system_checks = []  # the database check this command answers would stop it

    def add_arguments(self, parser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="The database to update (default: default).")

    def handle(self, *args: Any, database: str = DEFAULT_DB_ALIAS, **options: Any) -> None:
        moved = adopt_legacy_label(database)
        if moved:
            self.stdout.write(f"Moved {', '.join(moved)} from {LEGACY_LABEL!r} to {LABEL!r}.")
        else:
            self.stdout.write(f"Nothing to move: no migrations of this app are recorded under {LEGACY_LABEL!r}.")
