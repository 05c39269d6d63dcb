"""Run the periodic-job scheduler apart from the workers (see apps.tasks.scheduler); workers send the
schedules themselves unless TASK_CONFIG.schedules_in_workers is off."""

from __future__ import annotations

import signal
from datetime import datetime, timezone
from importlib.util import find_spec
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tasks import scheduler as schedules
from apps.tasks.config import get_task_config
from apps.tasks.services.schedules import last_sent, next_run


def _stop(signum: int, frame: Any) -> None:
    # dramatiq-crontab's way: the blocking scheduler leaves start() on KeyboardInterrupt.
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


class Command(BaseCommand):
    help = (
        "Send TASK_CONFIG.schedules' messages on their cron ticks (the work runs in workers). "
        "Each tick is sent once even if several schedulers run. SIGTERM stops it after any send in progress."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--list", action="store_true", dest="list_only", help="Print the schedules, next and last runs, and exit."
        )

    def handle(self, *args: Any, list_only: bool = False, **options: Any) -> None:

        config = get_task_config()
        if not config.enabled:
            raise CommandError("Tasks are disabled (TASK_CONFIG.enabled is False): nothing to schedule.")
        if not config.schedules:
            raise CommandError("TASK_CONFIG.schedules is empty: nothing to schedule.")
        try:
            sends = schedules.scheduled_sends()
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        if list_only:
            self._list(sends)
            return
        if find_spec("dramatiq_crontab") is None:
            raise CommandError(
                "runscheduler needs the scheduler extra: pip install 'django-dramatiq-tasks[scheduler]' "
                "(workers send the schedules without it)."
            )
        scheduler = schedules.register(sends)
        for send in sends:
            self.stdout.write(
                f"Schedule {send.entry.name}: {send.entry.cron} -> {send.actor.actor_name} "
                f"(queue {send.actor.queue_name}), next {next_run(send.entry):%Y-%m-%d %H:%M %Z}"
            )
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGHUP, _stop)
        self.stdout.write("Scheduler started.")
        self.stdout.flush()
        try:
            scheduler.start()
        except KeyboardInterrupt as exc:
            self.stdout.write(f"Scheduler stopping ({exc}): waiting for any send in progress.")
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
        self.stdout.write("Scheduler stopped.")

    def _list(self, sends: list) -> None:

        try:
            sent = last_sent()
        except Exception as exc:  # Redis down: still list the configuration
            self.stderr.write(f"Last runs unavailable: {type(exc).__name__}")
            sent = {}
        for send in sends:
            last = sent.get(send.entry.name)
            last_text = (
                f"{datetime.fromtimestamp(last['tick'], tz=timezone.utc):%Y-%m-%d %H:%M} UTC (job {last['message_id']})"
                if last
                else "never"
            )
            self.stdout.write(
                f"{send.entry.name}\t{send.entry.cron}\t{send.actor.actor_name}\tnext "
                f"{next_run(send.entry):%Y-%m-%d %H:%M %Z}\tlast {last_text}"
            )
