"""Fixtures of the operations tests: any manage.py command as a subprocess on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, manage_env


class ManagedProcess:
    """``manage.py <command>`` in its own process group, logging to a file."""

    def __init__(self, *args: str, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
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
        """SIGTERM the main process; its exit code (raises TimeoutExpired if it outlives ``timeout``)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.terminate(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._log.close()


def process_env(**overrides: str) -> dict[str, str]:
    """The environment of a subprocess that shares this run's Redis namespace and test database."""
    from django.db import connection

    env = manage_env()
    env["TEST_WORKER_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
    env.update(overrides)
    return env


@pytest.fixture
def start_manage(tmp_path, broker_redis) -> Iterator:
    """Start ``manage.py`` subprocesses (e.g. ``runscheduler``); all are stopped after the test."""
    processes: list[ManagedProcess] = []

    def start(*args: str, **env_overrides: str) -> ManagedProcess:
        name = f"{args[0]}-{len(processes)}.log"
        process = ManagedProcess(*args, log_path=tmp_path / name, env=process_env(**env_overrides))
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
