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
from apps.tasks.services import schedules
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
    assert {schedules.current_tick(minute + offset) for offset in (-25, -0.5, 0, 0.2, 3, 25)} == {minute}
    assert schedules.current_tick(minute + 60) == minute + 60


@pytest.mark.django_db(transaction=True)
def test_a_tick_is_sent_once_however_many_schedulers_fire_it(broker_redis, clean_queues):
    entry = ScheduleEntry(name="purge-once", cron="* * * * *", actor=PURGE, kwargs={"days": 30})
    actor = schedules.resolve_schedule_actor(PURGE)
    tick = schedules.current_tick()
    sent = [schedules.send_tick(entry, actor, tick) for _ in range(3)]  # three schedulers, one tick
    assert sent[0] is not None and sent[1:] == [None, None]
    namespace = dramatiq.get_broker().namespace
    assert broker_redis.llen(keys.queue(namespace, "low")) == 1
    record = JobRecord.objects.get(actor_name=PURGE)
    assert (record.message_id, record.status, record.kwargs) == (sent[0], JobStatus.PENDING, {"days": 30})
    assert schedules.send_tick(entry, actor, tick + 60) is not None  # the next tick is sent
    assert json.loads(broker_redis.hget(keys.schedules_last_sent(namespace), "purge-once"))["tick"] == tick + 60


@pytest.mark.django_db(transaction=True)
def test_a_failed_send_frees_the_tick_for_another_scheduler(broker_redis, clean_queues, monkeypatch):
    from apps.tasks import enqueue as enqueue_module

    entry = ScheduleEntry(name="purge-retry", cron="* * * * *", actor=PURGE)
    actor = schedules.resolve_schedule_actor(PURGE)
    tick = schedules.current_tick()

    def refuse(*args, **kwargs):
        raise enqueue_module.EnqueueError("broker refused")

    with monkeypatch.context() as patch:
        patch.setattr(schedules, "enqueue", refuse)
        assert schedules.send_tick(entry, actor, tick) is None
    namespace = dramatiq.get_broker().namespace
    assert not broker_redis.exists(keys.schedule_tick(namespace, "purge-retry", tick))
    assert schedules.send_tick(entry, actor, tick) is not None


@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_each_due_tick_once_and_skips_an_entry_it_cannot_resolve(broker_redis, clean_queues, caplog):
    entries = (
        ScheduleEntry(name="purge-every-minute", cron="* * * * *", actor=PURGE),
        ScheduleEntry(name="hourly", cron="0 * * * *", actor=PURGE),
        ScheduleEntry(name="typo", cron="* * * * *", actor="apps.tasks.tasks.purge_job_record_task"),
    )
    minute = (int(time.time()) // 60) * 60
    if minute % 3600 == 0:
        minute += 60  # keep the hourly entry's tick out of this minute
    one, other = schedules.WorkerSchedules(entries, interval=5), schedules.WorkerSchedules(entries, interval=5)
    assert "typo" in caplog.text and one.names == other.names == ["purge-every-minute", "hourly"]

    first = one.fire_due(now=minute + 4)  # the heartbeat after the tick
    assert list(first) == ["purge-every-minute"] and first["purge-every-minute"] is not None
    assert one.fire_due(now=minute + 9) == {}  # the next beat: this tick was tried here already
    assert other.fire_due(now=minute + 6) == {"purge-every-minute": None}  # another process: claimed
    assert one.fire_due(now=minute + 40) == {}  # past the grace: no tick is due
    later = one.fire_due(now=minute + 62)
    assert later["purge-every-minute"] not in (None, first["purge-every-minute"])
    assert JobRecord.objects.filter(actor_name=PURGE).count() == 2


def test_a_long_heartbeat_does_not_step_over_a_tick():
    entry = ScheduleEntry(name="every-five", cron="*/5 * * * *", actor=PURGE)
    tick = 1_800_000_000 - 1_800_000_000 % 300
    assert schedules.due_tick(entry, now=tick + 30) is None  # past the 25 s misfire grace
    assert schedules.due_tick(entry, now=tick + 30, grace=45) == tick  # a 30 s beat still sees it
    assert schedules.due_tick(entry, now=tick + 301, grace=400) == tick + 300  # the latest tick


def test_rundramatiq_says_which_schedules_its_workers_send(settings, monkeypatch):
    monkeypatch.setattr("os.execvp", lambda path, args: None)
    out, err = io.StringIO(), io.StringIO()
    call_command("rundramatiq", stdout=out, stderr=err)
    assert "Schedules sent by these workers: purge-job-records (17 3 * * *), knowbase-sweep (*/5 * * * *)." in (
        out.getvalue()
    )
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"schedules_in_workers": False})
    out, err = io.StringIO(), io.StringIO()
    call_command("rundramatiq", stdout=out, stderr=err)
    assert "Schedules sent" not in out.getvalue()
    assert "schedules_in_workers is off" in err.getvalue() and "runscheduler" in err.getvalue()


def test_list_shows_each_schedule_with_its_next_run():
    out = io.StringIO()
    call_command("runscheduler", "--list", stdout=out)
    lines = dict(line.split("\t", 1) for line in out.getvalue().splitlines())
    assert lines["purge-job-records"].startswith(f"17 3 * * *\t{PURGE}\tnext ")
    assert lines["knowbase-sweep"].startswith("*/5 * * * *\tknowbase_sweep\tnext ")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_scheduler_and_two_worker_processes_send_each_tick_once_and_a_worker_runs_it(
    start_manage, start_worker, broker_redis, clean_queues
):
    month_ago = timezone.now() - timedelta(days=30)
    JobRecord.objects.create(
        message_id="old-finished", actor_name="add", queue_name="default", status=JobStatus.COMPLETED,
        enqueued_at=month_ago, updated_at=month_ago,
    )  # fmt: skip
    every_minute = {"TASKS_PURGE_SCHEDULE": "* * * * *", "KNOWBASE_SWEEP_SCHEDULE": "off"}
    schedulers = [start_manage("runscheduler", **every_minute)]
    worker = start_worker(
        "--processes", "2", "--threads", "1", "--queues", "low", TASKS_SCHEDULES_IN_WORKERS="1", **every_minute
    )
    wait_for(lambda: "Scheduler started." in schedulers[0].log(), timeout=60, message="the scheduler to start")
    wait_for(lambda: worker.log().count("Worker process is ready") >= 2, timeout=60, message="both worker processes")
    assert "Schedules sent by these workers: purge-job-records (* * * * *)." in worker.log()

    # The first tick after all started: the scheduler and each worker process fire it; one sends.
    tick = (int(time.time() + 2) // 60 + 1) * 60  # a whole minute at least 2 s after all started
    minute = datetime.fromtimestamp(tick, tz=dt_timezone.utc).isoformat(timespec="minutes")
    sent_line, claimed_line = f"for tick {minute}.", f"tick {minute} was sent by another scheduler"

    def all_fired():
        logs = [schedulers[0].log(), worker.log()]
        fired = [log.count(sent_line) + log.count(claimed_line) for log in logs]
        return logs if fired[0] == 1 and fired[1] == 2 else None

    logs = wait_for(all_fired, timeout=150, interval=0.2, message=f"the three senders to fire the {minute} tick")
    assert sum(log.count(sent_line) for log in logs) == 1, logs
    assert sum(log.count(claimed_line) for log in logs) == 2, logs
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
