"""Send the built-in ping actor through the broker and wait until a worker has run it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from apps.tasks.config import get_task_config
from apps.tasks.management.base import OperatorCommand
from apps.tasks.redis_urls import mask_url
from apps.tasks.services.ping import send_ping, wait_for_pong


class Command(OperatorCommand):
    help = "Send a ping message and wait until a worker has processed it (exit 1 on time-out)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for a worker.")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        ping = send_ping()
        broker_url = mask_url(get_task_config().dramatiq.broker_url)
        self.stdout.write(f"Sent ping {ping.message_id} to queue {ping.queue_name!r} on {broker_url}")
        elapsed_ms = wait_for_pong(ping, timeout)
        if elapsed_ms is None:
            raise CommandError(
                f"No worker processed ping {ping.message_id} within {timeout:g}s: "
                f"is `manage.py rundramatiq` running on queue {ping.queue_name!r}?"
            )
        self.stdout.write(self.style.SUCCESS(f"A worker processed ping {ping.message_id} in {elapsed_ms:.0f} ms"))
