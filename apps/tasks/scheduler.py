"""``manage.py runscheduler``: dramatiq-crontab's clock (APScheduler's ``CronTrigger`` in a blocking
scheduler) firing ``TASK_CONFIG.schedules``. Sending, and the per-tick claim that makes any number
of senders (this scheduler, standbys, every worker process) send each tick once, are in
``apps.tasks.services.schedules``.

dramatiq-crontab's own optional lock is a leader lock with one global key (``dramatiq-scheduler``)
made at import time from its own Redis URL setting; a per-tick claim in the broker's namespace
needs no leader, keeps deployments sharing a Redis apart and survives a scheduler that stalls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dramatiq

from apps.tasks.config import ScheduleEntry, get_task_config
from apps.tasks.services.schedules import MISFIRE_GRACE_SECONDS, current_tick, resolve_schedule_actor, send_tick


@dataclass
class ScheduledSend:
    """One schedule, shaped as dramatiq-crontab's ``cron()`` expects an actor: it names the job after
    ``actor_name`` and calls ``send()`` on each tick."""

    entry: ScheduleEntry
    actor: dramatiq.Actor
    fn: Any = field(init=False, default=None)  # cron() may wrap it with a Sentry monitor; unused here

    @property
    def actor_name(self) -> str:
        return f"schedule:{self.entry.name}"

    def send(self) -> str | None:
        return send_tick(self.entry, self.actor, current_tick())


def scheduled_sends(schedules: tuple[ScheduleEntry, ...] | None = None) -> list[ScheduledSend]:
    """The configured schedules with their actors resolved; LookupError names every one missing."""
    entries = get_task_config().schedules if schedules is None else schedules
    sends, missing = [], []
    for entry in entries:
        try:
            sends.append(ScheduledSend(entry, resolve_schedule_actor(entry.actor)))
        except (ImportError, LookupError, dramatiq.errors.ActorNotFound) as exc:
            missing.append(f"{entry.name}: {entry.actor} ({exc})")
    if missing:
        raise LookupError("schedules whose actor cannot be found: " + "; ".join(missing))
    return sends


def register(sends: list[ScheduledSend]) -> Any:
    """Add the schedules to dramatiq-crontab's scheduler and return it (not started)."""
    from dramatiq_crontab import cron, scheduler  # builds its global scheduler on import: only where used

    scheduler.configure(
        job_defaults={"misfire_grace_time": MISFIRE_GRACE_SECONDS, "coalesce": True, "max_instances": 1},
        timezone="UTC",
    )
    for send in sends:
        cron(send.entry.cron)(send)
    return scheduler
