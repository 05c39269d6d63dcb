"""Periodic jobs: ``TASK_CONFIG.schedules`` sent on their cron ticks, each tick at most once.

Two kinds of sender fire the ticks, and any number of each may run:

- every worker process, on its registry heartbeat (``WorkerSchedules``), unless
  ``TASK_CONFIG.schedules_in_workers`` is off: running workers is then enough for the retention
  purge and the sweepers to happen;
- ``manage.py runscheduler`` (dramatiq-crontab's clock, see ``apps.tasks.scheduler``), for
  deployments that keep scheduling apart from the workers.

Before sending, a sender claims the tick with ``SET NX`` on a key naming the schedule and the
tick's minute: every other sender finds the key taken and sends nothing. The claim is dropped if
the send fails, so another sender may still send that tick.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
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

#: How long a claimed tick is remembered (far longer than any clock skew between senders).
TICK_TTL_SECONDS = 24 * 3600
#: A crontab job fires at second 0 of its minute; one firing later than this is skipped, not sent
#: (APScheduler's misfire grace time). Below 30 s, so rounding to the nearest minute names the tick.
MISFIRE_GRACE_SECONDS = 25


def current_tick(now: float | None = None) -> int:
    """The tick a firing scheduler serves: the nearest whole minute (epoch seconds). Crontab ticks
    fall on whole minutes, so senders whose clocks differ by under 30 s name the same tick."""
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
    """Send ``entry``'s message for ``tick`` unless another sender did: its message id, or None."""
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
            client.delete(claim)  # let another sender try this tick
        except Exception:
            logger.warning("Schedule %s: could not release the claim of tick %s.", entry.name, _iso(tick))
        return None
    finally:
        connections.close_all()  # a sender's thread sends once a minute at most: no idle connections
    sent = {"tick": tick, "message_id": message_id, "sent_at": time.time(), "by": worker_label()}
    client.hset(keys.schedules_last_sent(namespace), entry.name, json.dumps(sent))
    logger.info("Schedule %s: sent %s (job %s) for tick %s.", entry.name, actor.actor_name, message_id, _iso(tick))
    return message_id


def _iso(tick: int) -> str:
    return datetime.fromtimestamp(tick, tz=timezone.utc).isoformat(timespec="minutes")


def _trigger(entry: ScheduleEntry) -> CronTrigger:
    return CronTrigger.from_crontab(entry.cron, timezone=django_timezone.get_default_timezone())


def next_run(entry: ScheduleEntry, after: datetime | None = None) -> datetime | None:
    """When ``entry`` fires next (in the Django time zone, as the scheduler counts)."""
    return _trigger(entry).get_next_fire_time(None, after or datetime.now(timezone.utc))


def due_tick(entry: ScheduleEntry, now: float | None = None, grace: float = MISFIRE_GRACE_SECONDS) -> int | None:
    """The latest tick of ``entry`` that fired at most ``grace`` seconds before ``now``, or None."""
    now = time.time() if now is None else now
    trigger = _trigger(entry)
    fire = trigger.get_next_fire_time(None, datetime.fromtimestamp(now - grace, tz=timezone.utc))
    latest = None
    while fire is not None and fire.timestamp() <= now:
        latest = int(fire.timestamp())
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


def last_sent() -> dict[str, dict[str, Any]]:
    """Schedule name → the last tick a sender sent (from Redis)."""
    raw = get_redis().hgetall(keys.schedules_last_sent(dramatiq.get_broker().namespace))
    return {name.decode(): json.loads(value) for name, value in raw.items()}


class WorkerSchedules:
    """The schedules a worker process fires on its heartbeat: each due tick is tried once per
    process (``send_tick`` makes it once per deployment). A tick counts as due for the misfire
    grace, or for one heartbeat interval if that is longer, so a beat never steps over a tick of a
    schedule that fires less often than the beat. An entry whose actor this worker cannot find is
    reported once and left out; the others go on."""

    def __init__(self, schedules: tuple[ScheduleEntry, ...] | None = None, interval: float = 0) -> None:
        self._entries = get_task_config().schedules if schedules is None else schedules
        self._grace = max(MISFIRE_GRACE_SECONDS, interval * 1.5)
        self._actors: dict[str, dramatiq.Actor] = {}
        self._tried: dict[str, int] = {}
        for entry in self._entries:
            try:
                self._actors[entry.name] = resolve_schedule_actor(entry.actor)
            except (ImportError, LookupError, dramatiq.errors.ActorNotFound) as exc:
                logger.error("Schedule %s: actor %s not found (%s); this worker will not send it.",
                             entry.name, entry.actor, exc)  # fmt: skip

    @property
    def names(self) -> list[str]:
        return list(self._actors)

    def fire_due(self, now: float | None = None) -> dict[str, str | None]:
        """Send every schedule whose tick is due and not yet tried here: name → job id (None when
        another sender had the tick or the send failed)."""
        now = time.time() if now is None else now
        fired: dict[str, str | None] = {}
        for entry in self._entries:
            actor = self._actors.get(entry.name)
            tick = due_tick(entry, now, self._grace) if actor is not None else None
            if tick is None or self._tried.get(entry.name) == tick:
                continue
            self._tried[entry.name] = tick
            fired[entry.name] = send_tick(entry, actor, tick)
        return fired
