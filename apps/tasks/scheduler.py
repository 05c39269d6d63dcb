"""Periodic jobs: ``TASK_CONFIG.schedules`` sent on their cron ticks, each tick at most once.

The clock is dramatiq-crontab's (APScheduler's ``CronTrigger`` in a blocking scheduler, run by
``manage.py runscheduler``); this module only feeds it the configured schedules and makes each
send idempotent per tick. Before sending, a scheduler claims the tick with ``SET NX`` on a key
naming the schedule and the tick's minute: a second scheduler (a standby, an overlap during a
deploy, a copy started by mistake) finds the key taken and sends nothing. The claim is dropped if
the send fails, so another scheduler may still send that tick.

dramatiq-crontab's own optional lock is a leader lock with one global key (``dramatiq-scheduler``)
made at import time from its own Redis URL setting; a per-tick claim in the broker's namespace
needs no leader, keeps deployments sharing a Redis apart and survives a scheduler that stalls.

The scheduler only sends messages; the work runs in workers (e.g. ``purge_job_records_task``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import import_module
from typing import Any

import dramatiq
from apscheduler.triggers.cron import CronTrigger
from django.db import connections
from django.utils import timezone as django_timezone

from apps.tasks import keys
from apps.tasks.broker import get_redis
from apps.tasks.config import ScheduleEntry, get_task_config
from apps.tasks.enqueue import enqueue, resolve_actor
from apps.tasks.records import worker_label

logger = logging.getLogger(__name__)

#: How long a claimed tick is remembered (far longer than any clock skew between schedulers).
TICK_TTL_SECONDS = 24 * 3600
#: A crontab job fires at second 0 of its minute; one firing later than this is skipped, not sent
#: (APScheduler's misfire grace time). Below 30 s, so rounding to the nearest minute names the tick.
MISFIRE_GRACE_SECONDS = 25


def current_tick(now: float | None = None) -> int:
    """The tick a firing scheduler serves: the nearest whole minute (epoch seconds). Crontab ticks
    fall on whole minutes, so schedulers whose clocks differ by under 30 s name the same tick."""
    now = time.time() if now is None else now
    return int(round(now / 60) * 60)


def resolve_schedule_actor(reference: str) -> dramatiq.Actor:
    """The actor an entry names: a dotted path (``apps.tasks.tasks.purge_job_records_task``) is
    imported; a bare name is looked up in the broker after task discovery."""
    module_path, _, attribute = reference.rpartition(".")
    if not module_path:
        return resolve_actor(reference)
    actor = getattr(import_module(module_path), attribute, None)
    if not isinstance(actor, dramatiq.Actor):
        raise LookupError(f"{reference!r} is not a dramatiq actor")
    return actor


def send_tick(entry: ScheduleEntry, actor: dramatiq.Actor, tick: int) -> str | None:
    """Send ``entry``'s message for ``tick`` unless another scheduler did: its message id, or None."""
    client = get_redis()
    namespace = dramatiq.get_broker().namespace
    claim = keys.schedule_tick(namespace, entry.name, tick)
    if not client.set(claim, worker_label(), nx=True, ex=TICK_TTL_SECONDS):
        logger.info("Schedule %s: tick %s was sent by another scheduler.", entry.name, _iso(tick))
        return None
    try:
        message_id = enqueue(actor, args=entry.args, kwargs=entry.kwargs)
    except Exception:
        logger.exception("Schedule %s: could not send tick %s.", entry.name, _iso(tick))
        try:
            client.delete(claim)  # let another scheduler try this tick
        except Exception:
            logger.warning("Schedule %s: could not release the claim of tick %s.", entry.name, _iso(tick))
        return None
    finally:
        connections.close_all()  # scheduler threads run a tick in minutes: no idle connections between
    sent = {"tick": tick, "message_id": message_id, "sent_at": time.time(), "by": worker_label()}
    client.hset(keys.schedules_last_sent(namespace), entry.name, json.dumps(sent))
    logger.info("Schedule %s: sent %s (job %s) for tick %s.", entry.name, actor.actor_name, message_id, _iso(tick))
    return message_id


def _iso(tick: int) -> str:
    return datetime.fromtimestamp(tick, tz=timezone.utc).isoformat(timespec="minutes")


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


def next_run(entry: ScheduleEntry, after: datetime | None = None) -> datetime | None:
    """When ``entry`` fires next (in the Django time zone, as the scheduler counts)."""
    trigger = CronTrigger.from_crontab(entry.cron, timezone=django_timezone.get_default_timezone())
    return trigger.get_next_fire_time(None, after or datetime.now(timezone.utc))


def last_sent() -> dict[str, dict[str, Any]]:
    """Schedule name → the last tick a scheduler sent (from Redis)."""
    raw = get_redis().hgetall(keys.schedules_last_sent(dramatiq.get_broker().namespace))
    return {name.decode(): json.loads(value) for name, value in raw.items()}


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
