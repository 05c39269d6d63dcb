"""Bounded polling and worker subprocesses for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.02, message: str = "") -> T:
    """Return the first truthy value of ``condition()``, polling until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


def manage_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONUNBUFFERED"] = "1"
    # Workers send no schedules unless a test asks: a sweep every 5 minutes would add jobs to tests
    # that count them.
    env.setdefault("TASKS_SCHEDULES_IN_WORKERS", "0")
    env.update(overrides)
    return env


def process_env(**overrides: str) -> dict[str, str]:
    """The environment of a subprocess that shares this run's Redis namespace and test database."""
    from django.db import connection

    env = manage_env()
    env["TEST_WORKER_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
    env.update(overrides)
    return env


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_manage(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env or manage_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ManagedProcess:
    """``manage.py <command>`` as a subprocess in its own process group, logging to a file,
    so a kill is a real kill of the command and everything it started."""

    def __init__(self, *args: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env or manage_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def terminate(self, timeout: float) -> int:
        """SIGTERM the main process and return its exit code (raises if it outlives ``timeout``)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its worker processes."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.terminate(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self._log.close()


class WorkerProcess(ManagedProcess):
    """``manage.py rundramatiq``."""

    def __init__(self, *args: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        super().__init__("rundramatiq", *args, log_path=log_path, env=env)


def stream_events(broker_redis, job_id: str, until: str | None = None) -> list[dict]:
    """The job's lifecycle events in stream order, ``meta`` decoded; with ``until``, once an event of
    that name is among them (events are published just after the record commits, so a finished
    record can be read a moment before its last event)."""
    import json

    import dramatiq

    from apps.tasks import keys

    def read() -> list[dict]:
        found = []
        for _, fields in broker_redis.xrange(keys.events(dramatiq.get_broker().namespace)):
            event = {key.decode(): value.decode() for key, value in fields.items()}
            if event["job_id"] == job_id:
                event["meta"] = json.loads(event["meta"])
                found.append(event)
        return found

    if until is None:
        return read()
    return wait_for(
        lambda: (events := read()) and any(event["event"] == until for event in events) and events,
        timeout=30,
        message=f"a {until!r} event for job {job_id}",
    )


def redis_test_key(label: str = "") -> str:
    """A fresh Redis key in this run's namespace (deleted with it), for a task to report through."""
    import uuid

    import dramatiq

    return f"{dramatiq.get_broker().namespace}:test:{label}{uuid.uuid4().hex}"


def wait_finished(result: T, timeout: float = 30) -> T:
    """Refresh a Django Tasks result until it is finished (SUCCESSFUL or FAILED); return it."""

    def done() -> bool:
        result.refresh()
        return result.is_finished

    wait_for(done, timeout=timeout, message=f"task {result.id} to finish")
    return result
