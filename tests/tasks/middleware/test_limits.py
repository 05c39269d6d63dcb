"""Per-actor limits with real workers: at most N of an actor's jobs run at once across processes,
at most M start per period; a job waiting for a slot is neither failed nor retried, and ends
completed; a worker killed while holding a slot gives it back through recovery."""

from __future__ import annotations

import uuid

import dramatiq
import pytest

from apps.tasks.decorators import parse_rate_limit, task
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services import limits
from tests.helpers import wait_for
from tests.testapp import tasks

WORKERS = ("--processes", "2", "--threads", "4", "--queues", "default")
#: How long after taking its rate slot a job may note that it started.
SLACK = 0.2


def key() -> str:
    return f"{dramatiq.get_broker().namespace}:test:limits:{uuid.uuid4().hex}"


def all_completed(job_ids: list[str]) -> bool:
    return JobRecord.objects.filter(message_id__in=job_ids, status=JobStatus.COMPLETED).count() == len(job_ids)


def most_at_once(entries: list[bytes]) -> int:
    running = most = 0
    events = sorted((float(when), kind) for kind, _, when in (entry.decode().split() for entry in entries))
    for _, kind in events:  # an end and a start at the same instant: "end" sorts first
        running += 1 if kind == "start" else -1
        most = max(most, running)
    return most


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_at_most_concurrency_jobs_run_at_once_across_processes(start_worker, broker_redis, clean_queues):
    start_worker(*WORKERS)
    log = key()
    job_ids = [enqueue(tasks.one_of_two, args=(log, number, 0.2)) for number in range(8)]
    wait_for(lambda: all_completed(job_ids), timeout=60, message="all 8 jobs")
    entries = broker_redis.lrange(log, 0, -1)
    assert len(entries) == 16  # each ran once
    assert most_at_once(entries) == 2  # 8 threads were free; the limit held them to two
    records = JobRecord.objects.filter(message_id__in=job_ids)
    assert {record.error_message for record in records} == {""}  # waiting is not failing
    assert any(record.attempts > 1 for record in records)  # some waited: each wait is a delivery
    assert int(broker_redis.get(limits.limits_for(dramatiq.get_broker(), "one_of_two").concurrent.key)) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_at_most_rate_limit_jobs_start_per_period(start_worker, broker_redis, clean_queues):
    start_worker(*WORKERS)
    log = key()
    job_ids = [enqueue(tasks.three_a_second, args=(log, number)) for number in range(9)]
    wait_for(lambda: all_completed(job_ids), timeout=60, message="all 9 jobs")
    starts = sorted(float(entry) for entry in broker_redis.lrange(log, 0, -1))
    assert len(starts) == 9
    # "3/s" counts starts in one-second buckets, by the time the worker took the slot; a job notes
    # its start a moment later (SLACK), so one noted just after a second began may belong to the last.
    by_second: dict[int, list[float]] = {}
    for start in starts:
        by_second.setdefault(int(start), []).append(start)
    for second, noted in by_second.items():
        late = sum(1 for start in noted if start - second < SLACK)
        assert len(noted) <= 3 + late, f"{len(noted)} starts in second {second}: {starts}"
    # 9 jobs at 3 a second take three seconds' buckets at least.
    assert int(starts[-1]) - int(starts[0] - SLACK) >= 2, starts


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_killed_holding_slots_gives_them_back_through_recovery(start_worker, broker_redis, clean_queues):
    """Without the recovery's release, the two slots of the killed jobs stay taken (their key lives a
    time limit, 10 min, past the last use) and no job of the actor could run again."""
    worker_args = ("--processes", "1", "--threads", "2", "--queues", "default")
    no_random_maintenance = {"TASKS_MAINTENANCE_CHANCE": "0"}
    log = key()
    doomed = start_worker(*worker_args, **no_random_maintenance)
    held = [enqueue(tasks.one_of_two, args=(log, number, 30.0)) for number in range(2)]
    wait_for(
        lambda: JobRecord.objects.filter(message_id__in=held, status=JobStatus.RUNNING).count() == 2,
        timeout=30,
        message="both slots taken",
    )
    slots_key = limits.limits_for(dramatiq.get_broker(), "one_of_two").concurrent.key
    assert int(broker_redis.get(slots_key)) == 2
    doomed.kill()
    start_worker(*worker_args, **no_random_maintenance)
    after = enqueue(tasks.one_of_two, args=(log, 99, 0.0))
    # The survivor sees the dead pid at its next heartbeat (5 s), runs the two again (quick now), then this one.
    wait_for(lambda: all_completed([*held, after]), timeout=30, message="the actor's jobs after the kill")
    wait_for(lambda: int(broker_redis.get(slots_key) or 0) == 0, timeout=5, message="every slot given back")


def test_limits_are_checked_where_they_are_declared():
    assert parse_rate_limit("100/m") == (100, 60)
    assert parse_rate_limit("10 / second") == (10, 1)
    assert parse_rate_limit((5, 30)) == (5, 30)
    for wrong in ("100", "0/s", "ten/s", "5/fortnight", (1,), (0, 10)):
        with pytest.raises(ValueError, match="rate_limit must be like"):
            parse_rate_limit(wrong)
    with pytest.raises(ValueError, match="concurrency must be a positive integer, not 0"):
        task(lambda: None, actor_name="no_slots", concurrency=0)
