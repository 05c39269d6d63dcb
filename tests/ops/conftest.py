"""Fixtures of the operations tests: any manage.py command as a subprocess on the test database."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.helpers import ManagedProcess, manage_env


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
