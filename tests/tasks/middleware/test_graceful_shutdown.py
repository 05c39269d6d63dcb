"""SIGTERM during a running task: it finishes within the shutdown timeout, or it is requeued at once.
Either way every message is accounted for."""

from __future__ import annotations

import subprocess
import time
import uuid

import dramatiq
import pytest

from apps.tasks import keys
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import wait_for
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ONE_THREAD = ("--processes", "1", "--threads", "1", "--queues", "default")


def status_of(message_id: str) -> str | None:
    record = JobRecord.objects.filter(message_id=message_id).first()
    return record.status if record else None


def unacknowledged(client, namespace: str) -> int:
    """Messages fetched by some broker process and not acknowledged (dramatiq's __acks__ sets)."""
    return sum(client.scard(key) for key in client.scan_iter(match=keys.acks(namespace, "*", "*"), count=1000))


def stop(worker, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    try:
        code = worker.terminate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker outlived {timeout}s after SIGTERM:\n{worker.log()}")
    return code, time.monotonic() - started


def test_a_running_task_finishes_within_the_timeout_and_waiting_ones_go_back(start_worker, broker_redis, clean_queues):
    namespace = dramatiq.get_broker().namespace
    key = f"{namespace}:test:shutdown:{uuid.uuid4().hex}"
    worker = start_worker(*ONE_THREAD, "--worker-shutdown-timeout", "30000")
    slow = enqueue(tasks.mark_slowly, args=(key, 0, 4.0))
    wait_for(lambda: status_of(slow) == JobStatus.RUNNING, timeout=60, message="the slow task to start")
    waiting = [enqueue(tasks.mark_slowly, args=(key, number, 0.01)) for number in range(1, 6)]

    code, took = stop(worker, timeout=40)
    assert code == 0, worker.log()
    assert broker_redis.smembers(key) == {b"0"}, "the running task did not finish before the worker exited"
    assert status_of(slow) == JobStatus.COMPLETED
    assert took < 30, f"shutdown took {took:.1f}s, more than the 30 s timeout"
    # The waiting messages (prefetched or not) are back on the queue, none half-done.
    assert broker_redis.llen(keys.queue(namespace, "default")) == 5
    assert unacknowledged(broker_redis, namespace) == 0
    assert {status_of(message_id) for message_id in waiting} == {JobStatus.PENDING}
    print(f"\nshutdown with a task finishing in time: {took:.2f}s")

    start_worker(*ONE_THREAD)
    wait_for(lambda: broker_redis.scard(key) == 6, timeout=60, message="the waiting tasks, run by the next worker")
    wait_for(
        lambda: JobRecord.objects.filter(message_id__in=waiting, status=JobStatus.COMPLETED).count() == 5,
        timeout=20,
        message="5 completed records",
    )


def test_a_task_outliving_the_timeout_is_requeued_at_once(start_worker, broker_redis, clean_queues):
    namespace = dramatiq.get_broker().namespace
    key = f"{namespace}:test:shutdown:{uuid.uuid4().hex}"
    # The default 60 s heartbeat timeout: recovery of dead workers cannot be what brings the message back.
    worker = start_worker(*ONE_THREAD, "--worker-shutdown-timeout", "2000")
    slow = enqueue(tasks.mark_slowly, args=(key, 7, 6.0))
    wait_for(lambda: status_of(slow) == JobStatus.RUNNING, timeout=60, message="the slow task to start")

    code, took = stop(worker, timeout=20)
    assert code == 0, worker.log()
    assert broker_redis.scard(key) == 0, "the task was expected to outlive the 2 s shutdown timeout"
    assert took < 2 + 8, f"shutdown took {took:.1f}s for a 2 s timeout"
    assert "requeued" in worker.log()
    # Back on its queue as soon as the worker is gone, not after a heartbeat timeout.
    assert broker_redis.llen(keys.queue(namespace, "default")) == 1
    assert unacknowledged(broker_redis, namespace) == 0
    print(f"\nshutdown with a task outliving a 2 s timeout: {took:.2f}s")

    restarted = time.monotonic()
    start_worker(*ONE_THREAD)
    wait_for(lambda: broker_redis.smembers(key) == {b"7"}, timeout=60, message="the requeued task, run again")
    wait_for(lambda: status_of(slow) == JobStatus.COMPLETED, timeout=20, message="its record completed")
    print(f"requeued task done {time.monotonic() - restarted:.2f}s after the next worker started (task: 6 s)")
