from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from apps.tasks import keys
from tests.helpers import ManagedProcess, WorkerProcess, manage_env, process_env


def _delete_namespace(client: redis.Redis, pattern: str) -> None:
    batch = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(batch), 500):
        client.delete(*batch[start : start + 500])


@pytest.fixture(scope="session", autouse=True)
def _records_go_to_the_test_database(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Create the test database first, so this process's record flusher and every worker
    subprocess write there; flush what is left before the database is destroyed."""
    yield
    from apps.tasks import records

    with django_db_blocker.unblock():
        records.stop()
    shutil.rmtree(settings.TASK_CONFIG.dramatiq.state_path, ignore_errors=True)


@pytest.fixture(scope="session")
def broker_redis() -> Iterator[redis.Redis]:
    """A client on the broker's database; the test run's namespace is deleted at the end."""
    from apps.tasks.broker import get_redis

    client = get_redis()
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {settings.TASK_CONFIG.masked_broker_url} does not answer: {exc}")
    yield client
    _delete_namespace(client, f"{settings.TASK_CONFIG.dramatiq.redis_key_prefix}:*")


def _delete_queues(client: redis.Redis) -> None:
    """Delete queues, dead letters, events and test keys; keep what live workers own."""
    namespace = settings.TASK_CONFIG.dramatiq.redis_key_prefix
    kept = (
        keys.heartbeats(namespace),
        keys.around_broker_id(keys.acks, namespace, "")[0],
        keys.around_broker_id(keys.inbox, namespace, "")[0],
        keys.inboxes(namespace),
        keys.idle_consumers(namespace, ""),
        keys.workers(namespace),
    )
    doomed = [key for key in client.scan_iter(match=f"{namespace}:*", count=1000) if not key.decode().startswith(kept)]
    for start in range(0, len(doomed), 500):
        client.delete(*doomed[start : start + 500])


@pytest.fixture
def clean_queues(broker_redis) -> Iterator[None]:
    """Empty queues, dead letters and events of this run's namespace before and after a test."""
    _delete_queues(broker_redis)
    yield
    _delete_queues(broker_redis)


def _worker_starter(log_dir, workers: list[WorkerProcess]):
    def start(*args: str, env: dict[str, str] | None = None, **env_overrides: str) -> WorkerProcess:
        from django.db import connection

        base = env or manage_env()
        base["TEST_WORKER_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
        base.update(env_overrides)
        worker = WorkerProcess(*args, log_path=log_dir / f"worker-{len(workers)}.log", env=base)
        workers.append(worker)
        return worker

    return start


@pytest.fixture(scope="module")
def start_module_worker(tmp_path_factory, broker_redis) -> Iterator:
    """Like ``start_worker``, for workers shared by the tests of one module."""
    workers: list[WorkerProcess] = []
    yield _worker_starter(tmp_path_factory.mktemp("workers"), workers)
    for worker in workers:
        worker.stop()


@pytest.fixture
def start_worker(tmp_path, broker_redis) -> Iterator:
    """Start ``manage.py rundramatiq`` subprocesses; all are stopped after the test.

    When the test uses the database, the workers use the same test database.
    """
    workers: list[WorkerProcess] = []
    yield _worker_starter(tmp_path, workers)
    for worker in workers:
        worker.stop()


@pytest.fixture
def start_manage(tmp_path, broker_redis) -> Iterator:
    """Start ``manage.py`` subprocesses (e.g. ``runscheduler``) on this run's database and Redis
    namespace; all are stopped after the test."""
    processes: list[ManagedProcess] = []

    def start(*args: str, **env_overrides: str) -> ManagedProcess:
        name = f"{args[0]}-{len(processes)}.log"
        process = ManagedProcess(*args, log_path=tmp_path / name, env=process_env(**env_overrides))
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


@pytest.fixture
def one_of_two_running(broker_redis) -> Iterator[str]:
    """One of the two concurrency slots of ``tests.testapp.tasks.one_of_two`` taken, as by a running
    job; yields the slots' key; given back after (a slot left taken would halve that actor's
    concurrency in later tests)."""
    import dramatiq

    from apps.tasks.services import limits

    key = limits.limits_for(dramatiq.get_broker(), "one_of_two").concurrent.key
    broker_redis.set(key, "1")
    yield key
    broker_redis.delete(key)
