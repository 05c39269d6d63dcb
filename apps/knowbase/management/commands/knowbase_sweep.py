"""Re-send documents stuck pending, queued or processing (run it from a scheduler)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.knowbase.config import get_config
from apps.knowbase.services.sweeper import sweep


class Command(BaseCommand):
    help = (
        "Send again the documents left pending or queued longer than --older-than seconds (for example "
        "saved while Redis was down) and those whose worker vanished. Exit status 1 if the broker refuses."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="SECONDS",
            help="Age in the current status before a document is re-sent (default KNOWBASE_SWEEP_AGE_SECONDS).",
        )
        parser.add_argument("--limit", type=int, default=None, help="Most documents per sweep (default 500).")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be sent.")

    def handle(self, *args: Any, older_than: int | None, limit: int | None, dry_run: bool, **options: Any) -> None:
        age = get_config().sweep_age_seconds if older_than is None else older_than
        if age < 0:
            raise CommandError("--older-than must not be negative")
        report = sweep(age_seconds=age, limit=limit, dry_run=dry_run)
        found = ", ".join(f"{count} {status}" for status, count in sorted(report.found.items())) or "none"
        if dry_run:
            self.stdout.write(f"Stale documents (older than {age}s): {found}. Dry run: nothing sent.")
            return
        self.stdout.write(f"Stale documents (older than {age}s): {found}. Re-sent {len(report.sent)}.")
        if report.broker_down:
            raise CommandError(
                f"the broker refused a message: {len(report.not_sent)} documents stay pending for the next sweep"
            )
