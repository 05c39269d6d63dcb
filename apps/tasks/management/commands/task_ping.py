"""Send the built-in ping actor through the broker and wait until a worker has run it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import dramatiq
from django.core.management.base import BaseCommand, CommandError

from apps.tasks import keys
from apps.tasks.broker import get_redis
from apps.tasks.config import get_task_config
from apps.tasks.redis_urls import mask_url


class Command(BaseCommand):
    help = "Send a ping message and wait until a worker has processed it (exit 1 on time-out)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for a worker.")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        from apps.tasks.tasks import ping

        config = get_task_config()
        token = uuid.uuid4().hex
        redis_client = get_redis()
        result_key = keys.ping_result(dramatiq.get_broker().namespace, token)
        started = time.monotonic()
        message = ping.send(token)
        self.stdout.write(
            f"Sent ping {message.message_id} to queue {message.queue_name!r} on {mask_url(config.dramatiq.broker_url)}"
        )
        while redis_client.get(result_key) is None:
            if time.monotonic() - started > timeout:
                raise CommandError(
                    f"No worker processed ping {message.message_id} within {timeout:g}s: "
                    f"is `manage.py rundramatiq` running on queue {message.queue_name!r}?"
                )
            time.sleep(0.02)
        elapsed_ms = (time.monotonic() - started) * 1000
        self.stdout.write(self.style.SUCCESS(f"A worker processed ping {message.message_id} in {elapsed_ms:.0f} ms"))
