"""Delete finished job records older than the retention period."""

from __future__ import annotations

from typing import Any

from apps.tasks.config import get_task_config
from apps.tasks.management.base import OperatorCommand
from apps.tasks.services.records import purge_old_records


class Command(OperatorCommand):
    help = "Delete finished job records (completed, failed, dead_letter, skipped) older than N days."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep records changed within this many days (default: TASK_CONFIG.record_retention_days).",
        )

    def handle(self, *args: Any, days: int | None, **options: Any) -> None:
        days = get_task_config().record_retention_days if days is None else days
        if days < 1:
            self.stderr.write("--days must be 1 or more")
            raise SystemExit(2)
        deleted = purge_old_records(days)
        self.stdout.write(f"Deleted {deleted} job records older than {days} days.")
