"""Health: Redis, live workers and queue counts straight from Redis; HTTP and CLI faces."""

from __future__ import annotations

import json
import socket
import time

import dramatiq
import pytest
import redis

from apps.tasks.broker import RedisBroker
from apps.tasks.enqueue import enqueue
from apps.tasks.health import get_task_health
from apps.tasks.models import JobStatus
from apps.tasks.services.queues import queue_stats
from tests.helpers import manage_env, run_manage, wait_for
from tests.tasks.middleware.test_lifecycle import wait_for_status
from tests.tasks.services.test_recovery import FAST_RECOVERY, HEARTBEAT_TIMEOUT_MS, WORKER_ARGS
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def short_heartbeats(settings):
    config = settings.TASK_CONFIG
    settings.TASK_CONFIG = config.model_copy(
        update={"dramatiq": config.dramatiq.model_copy(update={"heartbeat_timeout_ms": HEARTBEAT_TIMEOUT_MS})}
    )


@pytest.mark.worker
def test_counts_workers_and_status(start_worker, broker_redis, clean_queues, short_heartbeats, client, settings):
    for _ in range(3):
        enqueue(tasks.low_noop)
    for _ in range(2):
        enqueue(tasks.low_noop, delay=60_000)
    worker = start_worker(*WORKER_ARGS, **FAST_RECOVERY)
    dead_id = enqueue(tasks.broken, args=("for the dead letter count",))
    wait_for_status(dead_id, JobStatus.DEAD_LETTER)

    report = wait_for(lambda: (r := get_task_health())["workers"] and r, message="a live worker in the report")
    (live,) = report["workers"]
    assert live["ppid"] == worker.pid and live["queues"] == ["default"]
    low, default = report["queues"]["low"], report["queues"]["default"]
    assert (low["ready"], low["delayed"], low["dead_letter"], low["consumers"]) == (3, 2, 0, 0)
    assert low["oldest_age_seconds"] is not None and low["oldest_age_seconds"] >= 0
    wait_for(lambda: get_task_health()["queues"]["default"]["dead_letter"] == 1)
    assert default["consumers"] == 1 and default["has_consumer"]
    assert report["status"] == "degraded"  # low, high and knowledge have no consumer
    assert set(report["queues_without_consumer"]) == {"high", "low", "knowledge"}
    assert report["configuration_valid"] and report["redis_connection"]["ok"]
    assert "tests.testapp.tasks" in report["discovered_modules"]

    response = client.get("/health/tasks/")
    assert response.status_code == 503 and response.json()["status"] == "degraded"
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"health_requires_consumers": False})
    response = client.get("/health/tasks/")
    assert response.status_code == 200 and response.json()["status"] == "ok"

    worker.kill()
    killed_at = time.monotonic()
    wait_for(lambda: get_task_health()["workers"] == [], timeout=HEARTBEAT_TIMEOUT_MS / 1000 + 2)
    assert time.monotonic() - killed_at <= HEARTBEAT_TIMEOUT_MS / 1000 + 2


def test_redis_down_is_503_and_says_why_without_secrets(client):
    original = dramatiq.get_broker()
    dead = RedisBroker(url=f"redis://:hunter2@127.0.0.1:{closed_port()}/2", namespace=original.namespace)
    dramatiq.set_broker(dead)
    try:
        report = get_task_health()
        response = client.get("/health/tasks/")
    finally:
        dramatiq.set_broker(original)
    assert report["status"] == "down"
    assert report["redis_connection"]["ok"] is False
    assert "ConnectionError" in report["redis_connection"]["error"]
    assert response.status_code == 503
    assert "hunter2" not in response.content.decode()


def test_task_health_command_exit_codes_and_masking():
    down = run_manage(
        "task_health", "--json", env=manage_env(REDIS_URL=f"redis://user:hunter2@127.0.0.1:{closed_port()}/0")
    )
    assert down.returncode == 2, down.stderr
    report = json.loads(down.stdout)
    assert report["status"] == "down"
    assert report["redis_connection"]["url"].startswith("redis://user:***@127.0.0.1")
    assert "hunter2" not in down.stdout + down.stderr

    degraded = run_manage("task_health")  # no worker consumes any queue here
    assert degraded.returncode == 1, degraded.stderr
    assert "status: degraded" in degraded.stdout

    healthy = run_manage("task_health", env=manage_env(TASKS_HEALTH_REQUIRES_CONSUMERS="0"))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr


def test_queue_stats_cost_a_fixed_number_of_round_trips(broker_redis, monkeypatch):
    calls = {"commands": 0, "pipelines": 0}
    command, execute = redis.Redis.execute_command, redis.client.Pipeline.execute

    def counted_command(self, *args, **kwargs):
        calls["commands"] += 1
        return command(self, *args, **kwargs)

    def counted_execute(self, *args, **kwargs):
        calls["pipelines"] += 1
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "execute_command", counted_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted_execute)
    queue_stats(("default",))
    few = dict(calls)
    calls.update(commands=0, pipelines=0)
    queue_stats(tuple(f"q{index}" for index in range(40)))
    assert calls == few
    assert calls["commands"] + calls["pipelines"] <= 3
