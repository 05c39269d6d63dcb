"""rundramatiq takes its defaults from TASK_CONFIG and runs a real worker on real Redis."""

import io
import os
import re
import subprocess
import uuid

import pytest
from django.core.management import CommandError, call_command

from apps.tasks.config import DramatiqConfig, TaskConfig
from tests.helpers import wait_for


@pytest.fixture
def exec_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execvp", lambda path, args: calls.append(args))
    return calls


def option_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def queues_option(args: list[str]) -> list[str]:
    # dramatiq's command line ends with ``--queues Q1 Q2 ...`` when queues are given.
    return args[args.index("--queues") + 1 :]


def test_defaults_come_from_the_config(settings, exec_calls):
    settings.TASK_CONFIG = TaskConfig(
        dramatiq=DramatiqConfig(
            processes=3, threads=5, queues=["emails", "knowledge"], worker_shutdown_timeout_ms=12_000
        )
    )
    call_command("rundramatiq", stdout=open(os.devnull, "w"))
    (args,) = exec_calls
    assert option_value(args, "--processes") == "3"
    assert option_value(args, "--threads") == "5"
    assert option_value(args, "--worker-shutdown-timeout") == "12000"
    assert queues_option(args) == ["default", "high", "low", "emails", "knowledge"]
    assert "apps.tasks.tasks" in args
    assert "tests.testapp.tasks" in args


def test_command_line_overrides_the_config(exec_calls):
    call_command("rundramatiq", "--processes", "1", "--threads", "2", "--queues", "high", stdout=open(os.devnull, "w"))
    (args,) = exec_calls
    assert option_value(args, "--processes") == "1"
    assert option_value(args, "--threads") == "2"
    assert queues_option(args) == ["high"]


def test_unknown_queue_is_an_error_listing_the_valid_ones(exec_calls):
    with pytest.raises(CommandError, match=r"Unknown queue\(s\): nope\. Configured queues: default, high, low"):
        call_command("rundramatiq", "--queues", "default", "nope")
    assert exec_calls == []


def test_disabled_tasks_run_no_worker(settings, exec_calls):
    settings.TASK_CONFIG = TaskConfig(enabled=False)
    with pytest.raises(CommandError, match="disabled"):
        call_command("rundramatiq")
    assert exec_calls == []


@pytest.mark.worker
def test_worker_processes_a_discovered_actor_and_stops_cleanly_on_sigterm(start_worker, broker_redis, settings):
    from tests.testapp.tasks import record_effect

    shutdown_timeout_ms = 10_000
    worker = start_worker(
        "--processes", "1", "--threads", "2", "--queues", "default",
        "--worker-shutdown-timeout", str(shutdown_timeout_ms),
    )  # fmt: skip
    key = f"{settings.TASK_CONFIG.dramatiq.redis_key_prefix}:test:effect:{uuid.uuid4().hex}"
    record_effect.send(key, "done")
    assert wait_for(lambda: broker_redis.lrange(key, 0, -1), timeout=30, message="the worker's effect") == [b"done"]
    assert "--processes 1 --threads 2" in worker.log()
    assert "tests.testapp.tasks" in worker.log()

    try:
        exit_code = worker.terminate(timeout=shutdown_timeout_ms / 1000 + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker did not exit within its shutdown timeout:\n{worker.log()}")
    assert exit_code == 0, worker.log()
    assert "Worker has been shut down" in worker.log()


@pytest.fixture
def plain_actor_on_its_own_queue():
    """A plain ``@dramatiq.actor`` on a queue TASK_CONFIG does not list, as a third-party app has."""
    import dramatiq

    broker = dramatiq.get_broker()
    actor = dramatiq.actor(lambda: None, actor_name="reports_plain_actor", queue_name="reports")
    yield actor
    del broker.actors[actor.actor_name]
    broker.queues.discard("reports")  # a set on RedisBroker
    broker.delay_queues.discard("reports.DQ")


def test_queues_declared_by_actors_are_consumed_and_named(exec_calls, plain_actor_on_its_own_queue):
    out = io.StringIO()
    call_command("rundramatiq", stdout=out)
    (args,) = exec_calls
    assert queues_option(args)[-1] == "reports" and "knowledge" in queues_option(args)
    assert re.search(r"\(declared by actors, not in TASK_CONFIG: [^)]*\breports\b", out.getvalue())


def test_a_declared_queue_may_be_chosen_and_an_unknown_one_is_refused_with_both_lists(
    exec_calls, plain_actor_on_its_own_queue
):
    call_command("rundramatiq", "--queues", "reports", stdout=io.StringIO())
    assert queues_option(exec_calls[0]) == ["reports"]
    with pytest.raises(
        CommandError, match=r"Unknown queue\(s\): nope\. Configured queues: .*; declared by actors: .*\breports\b"
    ):
        call_command("rundramatiq", "--queues", "nope")
