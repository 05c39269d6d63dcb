"""Fixtures of the knowbase tests: a media folder, a shared knowledge worker, an unreachable Redis."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest

from apps.tasks import keys
from tests.helpers import WorkerProcess, manage_env, wait_for

#: As the brief for knowledge workers says; one process, so the scripted embedder's state is shared.
WORKER_ARGS = ("--processes", "1", "--threads", "2", "--queues", "knowledge")
SETTLED = ("completed", "failed")


@pytest.fixture(scope="session")
def knowbase_media_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("knowbase-media")


@pytest.fixture(autouse=True)
def _knowbase_media(knowbase_media_root, settings) -> None:
    """Uploads of this process and of the test workers go to one temporary folder."""
    settings.KNOWBASE_MEDIA_ROOT = str(knowbase_media_root)


def worker_env(media_root: Path, **extra: str) -> dict[str, str]:
    """Worker subprocess environment: the knowbase worker settings and one message at a time per process
    (``dramatiq_queue_prefetch=1``), so that two workers really share a burst of messages."""
    return manage_env(
        DJANGO_SETTINGS_MODULE="tests.knowbase.worker_settings",
        KNOWBASE_MEDIA_ROOT=str(media_root),
        dramatiq_queue_prefetch="1",
        **extra,
    )


def wait_until_ready(worker: WorkerProcess, timeout: float = 60) -> WorkerProcess:
    def ready() -> bool:
        assert worker.process.poll() is None, f"worker exited:\n{worker.log()}"
        return "ready for action" in worker.log()

    wait_for(ready, timeout=timeout, interval=0.1, message="the knowledge worker to start")
    return worker


@pytest.fixture(scope="module")
def knowledge_worker(django_db_setup, start_module_worker, knowbase_media_root) -> WorkerProcess:
    """One ``rundramatiq`` on the knowledge queue shared by a module's tests, on the test database."""
    return wait_until_ready(start_module_worker(*WORKER_ARGS, env=worker_env(knowbase_media_root)))


def wait_for_document(document_id: int, statuses=SETTLED, timeout: float = 60, worker: WorkerProcess | None = None):
    from apps.knowbase.models import Document

    def reached():
        document = Document.objects.filter(pk=document_id).first()
        return document if document is not None and document.status in statuses else None

    try:
        return wait_for(reached, timeout=timeout, interval=0.05, message=f"document {document_id} to be {statuses}")
    except AssertionError as exc:
        row = Document.objects.filter(pk=document_id).values("status", "error", "attempts", "claim_token").first()
        records = [(r.message_id, r.status, r.attempts, r.error_message) for r in job_records_for(document_id)]
        log = worker.log() if worker else ""
        mentions = "\n".join(line for line in log.splitlines() if f"Document {document_id} " in line)
        raise AssertionError(
            f"{exc}\ndocument: {row}\njob records: {records}\nworker log lines about it:\n{mentions}\n"
            f"worker log tail:\n{log[-4000:]}"
        ) from None


def knowledge_messages(broker_redis) -> list[dramatiq.Message]:
    """Messages waiting on the knowledge queue of this run's namespace."""
    namespace = dramatiq.get_broker().namespace
    return [dramatiq.Message.decode(data) for data in broker_redis.hvals(keys.queue_messages(namespace, "knowledge"))]


def messages_for(broker_redis, document_id: int) -> int:
    return sum(1 for message in knowledge_messages(broker_redis) if list(message.args) == [document_id])


def job_records_for(document_id: int) -> list:
    from apps.tasks.models import JobRecord

    return [
        record
        for record in JobRecord.objects.filter(actor_name="process_document_async").order_by("enqueued_at")
        if record.args == [document_id]
    ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def redis_unreachable() -> Iterator[None]:
    """Point this process's broker connection pool at a closed port (Redis itself keeps running for
    the workers and for everyone else on the machine)."""
    pool = dramatiq.get_broker().client.connection_pool
    saved = dict(pool.connection_kwargs)
    if "path" in saved:
        pool.connection_kwargs["path"] = "/nonexistent/redis.sock"
    else:
        pool.connection_kwargs["port"] = _closed_port()
    pool.disconnect()
    pool.reset()
    try:
        yield
    finally:
        pool.connection_kwargs.clear()
        pool.connection_kwargs.update(saved)
        pool.disconnect()
        pool.reset()
