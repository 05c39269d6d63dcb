"""The "temporal" section of the task health report: present only when enabled, the server and its workers
as the server reports them, degraded without workers, down (the report degraded) without a server."""

from __future__ import annotations

import json
import socket

import pytest
from django.conf import settings

from apps.tasks import health
from apps.tasks.health import get_task_health, register_health_section
from apps.workflows.devserver import free_port
from tests.helpers import run_manage, wait_for

from .conftest import worker_env


def with_temporal(**changes):
    return settings.TEMPORAL_CONFIG.model_copy(update=changes)


def test_no_section_while_temporal_is_disabled(settings, broker_redis):
    settings.TEMPORAL_CONFIG = with_temporal(enabled=False)
    assert "temporal" not in get_task_health()


def test_an_unreachable_server_is_down_and_degrades_the_report(temporal, settings, broker_redis):
    settings.TEMPORAL_CONFIG = with_temporal(address=f"127.0.0.1:{free_port()}", connect_timeout=1.0)
    report = get_task_health()
    section = report["temporal"]
    assert section["status"] == "down" and not section["server"]["ok"]
    assert section["server"]["error"] and report["status"] in ("degraded", "down")


def test_no_worker_polling_is_degraded(temporal, broker_redis):
    section = get_task_health()["temporal"]
    assert section["server"]["ok"] and section["server"]["version"]
    assert section["status"] == "degraded" and "no live worker" in section["reason"]
    assert section["workers"] == []


@pytest.mark.worker
def test_the_server_and_its_workers(temporal, start_temporal_worker, broker_redis):
    worker = start_temporal_worker()
    identity = f"{socket.gethostname()}:{worker.pid}"

    def reported():
        # Its workflow and activity pollers reach the server one after the other: wait for both.
        section = get_task_health()["temporal"]
        kinds = {kind for entry in section["workers"] if entry["identity"] == identity for kind in entry["kinds"]}
        return section if kinds == {"activity", "workflow"} else None

    section = wait_for(reported, timeout=30, interval=0.2, message="the worker in the health report")
    assert section["status"] == "ok" and section["task_queue"] == temporal.task_queue
    assert section["server"]["address"] == temporal.address and section["server"]["latency_ms"] >= 0
    (entry,) = [entry for entry in section["workers"] if entry["identity"] == identity]
    assert sorted(entry["kinds"]) == ["activity", "workflow"] and entry["live"]
    assert section["open_workflows"] == 0

    # The command line face shows it too (a subprocess with Temporal on).
    result = run_manage("task_health", "--json", env=worker_env(temporal))
    assert json.loads(result.stdout)["temporal"]["server"]["ok"], result.stderr


def test_a_failing_section_is_reported_down_not_raised(broker_redis, settings):
    def broken():
        raise RuntimeError("probe exploded")

    register_health_section("broken", broken)
    try:
        report = get_task_health()
    finally:
        health._sections.pop("broken")
    assert report["broken"] == {"status": "down", "error": "RuntimeError: probe exploded"}
    assert report["status"] != "ok"
