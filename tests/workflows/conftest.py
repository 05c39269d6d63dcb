"""Fixtures of the workflow tests: a real Temporal dev server per module, Temporal on for this process,
``manage.py runtemporal`` subprocesses on the test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from apps.workflows.devserver import DevServer
from tests.helpers import manage_env

from .helpers import TemporalWorker

#: Fast failure detection for the tests: a dead worker's cached workflows move on after 1 s.
STICKY_QUEUE_TIMEOUT_MS = 1000
SHUTDOWN_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def temporal_server(tmp_path_factory) -> Iterator[DevServer]:
    """``temporal server start-dev`` on a free loopback port, state in a temporary SQLite file."""
    directory = tmp_path_factory.mktemp("temporal")
    server = DevServer(db_path=directory / "temporal.sqlite3", log_path=directory / "server.log")
    server.start(timeout=90)
    yield server
    server.stop(graceful=False)  # its state is thrown away with the module


@pytest.fixture(scope="module")
def temporal(temporal_server):
    """Temporal enabled in this process for the module, on a task queue of the module's own."""
    config = settings.TEMPORAL_CONFIG.model_copy(
        update={
            "enabled": True,
            "address": temporal_server.address,
            "task_queue": f"test-{uuid.uuid4().hex[:12]}",
            "sticky_queue_timeout": STICKY_QUEUE_TIMEOUT_MS / 1000,
            "shutdown_timeout": SHUTDOWN_TIMEOUT_MS / 1000,
        }
    )
    override = override_settings(TEMPORAL_CONFIG=config)
    override.enable()
    yield config
    override.disable()


def worker_env(config, **extra: str) -> dict[str, str]:
    """A ``runtemporal`` subprocess's environment: the module's server and task queue, the test database."""
    from django.db import connection

    return manage_env(
        TEMPORAL_ENABLED="1",
        TEMPORAL_ADDRESS=config.address,
        TEMPORAL_TASK_QUEUE=config.task_queue,
        TEMPORAL_STICKY_QUEUE_TIMEOUT_MS=str(STICKY_QUEUE_TIMEOUT_MS),
        TEMPORAL_SHUTDOWN_TIMEOUT_MS=str(SHUTDOWN_TIMEOUT_MS),
        TEMPORAL_ACTIVITY_THREADS="2",
        TEST_WORKER_DATABASE_NAME=str(connection.settings_dict["NAME"]),
        **extra,
    )


def _starter(temporal, log_dir, workers: list[TemporalWorker]):
    def start(*args: str, wait: bool = True, **env: str) -> TemporalWorker:
        log_path = log_dir / f"temporal-{len(workers)}.log"
        worker = TemporalWorker(*args, env=worker_env(temporal, **env), log_path=log_path)
        workers.append(worker)
        return worker.wait_ready() if wait else worker

    return start


@pytest.fixture
def start_temporal_worker(temporal, tmp_path, django_db_setup) -> Iterator:
    """Start ``manage.py runtemporal`` subprocesses (ready when returned); all are stopped after the test."""
    workers: list[TemporalWorker] = []
    yield _starter(temporal, tmp_path, workers)
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="module")
def module_temporal_worker(temporal, tmp_path_factory, django_db_setup, django_db_blocker) -> Iterator[TemporalWorker]:
    """One ``runtemporal`` shared by a module's tests."""
    workers: list[TemporalWorker] = []
    with django_db_blocker.unblock():
        worker = _starter(temporal, tmp_path_factory.mktemp("temporal-worker"), workers)()
    yield worker
    worker.stop()
