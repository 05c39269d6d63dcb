"""Periodic jobs: schedules in TaskConfig, one message per tick whatever the number of schedulers."""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import dramatiq
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.tasks import keys, scheduler
from apps.tasks.config import ScheduleEntry, TaskConfig
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import wait_for

PURGE = "purge_job_records_task"


def test_the_project_schedules_purge_and_the_knowbase_sweeper(settings):
    entries = {entry.name: entry for entry in settings.TASK_CONFIG.schedules}
    assert entries["purge-job-records"].actor == "apps.tasks.tasks.purge_job_records_task"
    assert entries["knowbase-sweep"].actor == "apps.knowbase.tasks.knowbase_sweep"
    sends = {send.entry.name: send for send in scheduler.scheduled_sends()}
    assert sends["purge-job-records"].actor.actor_name == PURGE
    assert sends["purge-job-records"].actor.queue_name == "low"
    assert sends["knowbase-sweep"].actor.actor_name == "knowbase_sweep"


def test_an_unknown_actor_stops_the_scheduler_naming_the_schedule(settings):
    settings.TASK_CONFIG = TaskConfig(
        schedules=[
            {"name": "good", "cron": "* * * * *", "actor": PURGE},
            {"name": "typo", "cron": "* * * * *", "actor": "apps.tasks.tasks.purge_job_record_task"},
        ]
    )
    with pytest.raises(CommandError, match=r"typo: apps\.tasks\.tasks\.purge_job_record_task"):
        call_command("runscheduler")


def test_ticks_are_whole_minutes_shared_by_clocks_a_few_seconds_apart():
    minute = 1_800_000_000 - 1_800_000_000 % 60
    assert {scheduler.current_tick(minute + offset) for offset in (-25, -0.5, 0, 0.2, 3, 25)} == {minute}
    assert scheduler.current_tick(minute + 60) == minute + 60


@pytest.mark.django_db(transaction=True)
def test_a_tick_is_sent_once_however_many_schedulers_fire_it(broker_redis, clean_queues):
    entry = ScheduleEntry(name="purge-once", cron="* * * * *", actor=PURGE, kwargs={"days": 30})
    actor = scheduler.resolve_schedule_actor(PURGE)
    tick = scheduler.current_tick()
    sent = [scheduler.send_tick(entry, actor, tick) for _ in range(3)]  # three schedulers, one tick
    assert sent[0] is not None and sent[1:] == [None, None]
    namespace = dramatiq.get_broker().namespace
    assert broker_redis.llen(keys.queue(namespace, "low")) == 1
    record = JobRecord.objects.get(actor_name=PURGE)
    assert (record.message_id, record.status, record.kwargs) == (sent[0], JobStatus.PENDING, {"days": 30})
    assert scheduler.send_tick(entry, actor, tick + 60) is not None  # the next tick is sent
    assert json.loads(broker_redis.hget(keys.schedules_last_sent(namespace), "purge-once"))["tick"] == tick + 60


@pytest.mark.django_db(transaction=True)
def test_a_failed_send_frees_the_tick_for_another_scheduler(broker_redis, clean_queues, monkeypatch):
    from apps.tasks import enqueue as enqueue_module

    entry = ScheduleEntry(name="purge-retry", cron="* * * * *", actor=PURGE)
    actor = scheduler.resolve_schedule_actor(PURGE)
    tick = scheduler.current_tick()

    def refuse(*args, **kwargs):
        raise enqueue_module.EnqueueError("broker refused")

    with monkeypatch.context() as patch:
        patch.setattr(scheduler, "enqueue", refuse)
        assert scheduler.send_tick(entry, actor, tick) is None
    namespace = dramatiq.get_broker().namespace
    assert not broker_redis.exists(keys.schedule_tick(namespace, "purge-retry", tick))
    assert scheduler.send_tick(entry, actor, tick) is not None


def test_list_shows_each_schedule_with_its_next_run():
    out = io.StringIO()
    call_command("runscheduler", "--list", stdout=out)
    lines = dict(line.split("\t", 1) for line in out.getvalue().splitlines())
    assert lines["purge-job-records"].startswith(f"17 3 * * *\t{PURGE}\tnext ")
    assert lines["knowbase-sweep"].startswith("*/5 * * * *\tknowbase_sweep\tnext ")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_schedulers_send_each_tick_once_and_a_worker_runs_it(
    start_manage, start_worker, broker_redis, clean_queues
):
    month_ago = timezone.now() - timedelta(days=30)
    JobRecord.objects.create(
        message_id="old-finished", actor_name="add", queue_name="default", status=JobStatus.COMPLETED,
        enqueued_at=month_ago, updated_at=month_ago,
    )  # fmt: skip
    every_minute = {"TASKS_PURGE_SCHEDULE": "* * * * *", "KNOWBASE_SWEEP_SCHEDULE": "off"}
    schedulers = [start_manage("runscheduler", **every_minute) for _ in range(2)]
    start_worker("--processes", "1", "--threads", "1", "--queues", "low")
    for process in schedulers:
        wait_for(lambda p=process: "Scheduler started." in p.log(), timeout=60, message="the schedulers to start")

    # The first tick after both started: each scheduler fires it; one sends, the other finds it claimed.
    tick = (int(time.time() + 2) // 60 + 1) * 60  # a whole minute at least 2 s after both started
    minute = datetime.fromtimestamp(tick, tz=dt_timezone.utc).isoformat(timespec="minutes")
    sent_line, claimed_line = f"for tick {minute}.", f"tick {minute} was sent by another scheduler"

    def both_fired():
        logs = [process.log() for process in schedulers]
        fired = [log.count(sent_line) + log.count(claimed_line) for log in logs]
        return logs if all(fired) else None

    logs = wait_for(both_fired, timeout=150, interval=0.2, message=f"both schedulers to fire the {minute} tick")
    assert sum(log.count(sent_line) for log in logs) == 1, logs
    assert sum(log.count(claimed_line) for log in logs) == 1, logs
    # No tick at all was sent twice, and each sent tick made exactly one job.
    sent_ticks = re.findall(r"Schedule purge-job-records: sent .* for tick (\S+)\.", "\n".join(logs))
    assert len(sent_ticks) == len(set(sent_ticks)) >= 1
    wait_for(
        lambda: JobRecord.objects.filter(actor_name=PURGE, status=JobStatus.COMPLETED).count() == len(sent_ticks),
        timeout=60,
        message="the worker to run the purges",
    )
    assert JobRecord.objects.filter(actor_name=PURGE).count() == len(sent_ticks)
    assert sum(JobRecord.objects.filter(actor_name=PURGE).values_list("result", flat=True)) == 1  # the old record
    assert not JobRecord.objects.filter(message_id="old-finished").exists()

    for process in schedulers:
        started = time.monotonic()
        try:
            assert process.terminate(timeout=30) == 0, process.log()
        except subprocess.TimeoutExpired:
            pytest.fail(process.log())
        assert "Scheduler stopped." in process.log()
        print(f"\nscheduler stopped {time.monotonic() - started:.2f}s after SIGTERM")
