"""Keep this worker process in the registry of live workers, and recover dead ones."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

from dramatiq.common import q_name
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)


class WorkerRegistryMiddleware(Middleware):
    """Registers each worker process (host, pid, queues, threads, started, last seen, tasks
    processed) with an expiring heartbeat, notes which messages it is running, and on every
    heartbeat recovers the messages of worker processes that died (see services.recovery).

    Parameters come from ``TASK_CONFIG.dramatiq``: ``heartbeat_timeout_ms`` (a worker silent
    this long is dead) and ``worker_heartbeat_interval_ms``.
    """

    def __init__(self) -> None:
        self._info = None
        self._lock = threading.Lock()
        self._finished: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker) -> None:
        from apps.tasks.services.workers import WorkerInfo

        queues = sorted(worker.consumer_whitelist or {q_name(name) for name in broker.get_declared_queues()})
        self._info = WorkerInfo(
            worker_id=broker.broker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            ppid=os.getppid(),
            queues=queues,
            threads=worker.worker_threads,
            started_at=time.time(),
        )
        self._beat(broker)
        self._thread = threading.Thread(target=self._run, args=(broker,), name="tasks-worker-registry", daemon=True)
        self._thread.start()

    def before_process_message(self, broker, message) -> None:
        if self._info is None:
            return
        from apps.tasks import keys
        from apps.tasks.broker import get_redis
        from apps.tasks.middleware.lifecycle import attempt_number

        entry = {
            "message_id": message.message_id,
            "queue": message.queue_name,
            "actor": message.actor_name,
            "attempt": attempt_number(message),
            "enqueued_ms": message.message_timestamp,
            "worker": f"{self._info.host}:{self._info.pid}",
        }
        redis_id = message.options.get("redis_message_id", message.message_id)
        get_redis().hset(keys.worker_in_flight(broker.namespace, self._info.worker_id), redis_id, json.dumps(entry))

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._finish(message)

    def after_skip_message(self, broker, message) -> None:
        self._finish(message)

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()

    def after_worker_shutdown(self, broker, worker) -> None:
        from apps.tasks.services.workers import unregister

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._info is not None:
            try:
                unregister(self._info.worker_id)
            except Exception:
                logger.exception("Could not remove worker %s from the registry.", self._info.worker_id)

    def _finish(self, message) -> None:
        if self._info is None:
            return
        with self._lock:
            self._info.tasks_processed += 1
            self._finished.append(message.options.get("redis_message_id", message.message_id))

    def _beat(self, broker) -> None:
        from apps.tasks.services.workers import publish

        with self._lock:
            finished, self._finished = self._finished, []
        try:
            publish(self._info, finished)
        except Exception:
            with self._lock:
                self._finished = finished + self._finished
            raise

    def _run(self, broker) -> None:
        from apps.tasks.config import get_task_config
        from apps.tasks.services.recovery import recover_dead_workers

        interval = get_task_config().dramatiq.heartbeat_interval_ms / 1000
        while not self._stop.wait(interval):
            try:
                self._beat(broker)
                recover_dead_workers(broker)
            except Exception:
                logger.exception("Worker registry heartbeat failed; retrying in %.1fs.", interval)
