"""Keep this worker process in the registry of live workers, and recover dead ones."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

from apps.tasks.broker.consumer import REDELIVERED_ATTRIBUTE
from apps.tasks.config import get_task_config
from apps.tasks.middleware.lifecycle import unwrapped
from apps.tasks.services import workers
from apps.tasks.services.inflight import ExclusiveRuns, InFlightSlots
from apps.tasks.services.reconcile import reconcile_if_due
from apps.tasks.services.recovery import recover_dead_workers
from apps.tasks.services.schedules import WorkerSchedules

logger = logging.getLogger(__name__)


class WorkerRegistryMiddleware(Middleware):
    """Registers each worker process (host, pid, queues, threads, started, last seen, tasks
    processed) with an expiring heartbeat, notes in a memory-mapped slot which message each
    thread runs, and on every heartbeat recovers the messages of worker processes that died
    (see services.recovery), sends lost messages again (services.reconcile) and sends the due
    schedules (services.schedules, unless ``TASK_CONFIG.schedules_in_workers`` is off).

    Parameters come from ``TASK_CONFIG.dramatiq``: ``heartbeat_timeout_ms`` (a worker silent
    this long is dead), ``worker_heartbeat_interval_ms`` and ``state_dir``.
    """

    def __init__(self) -> None:
        self._info = None
        self._slots = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._runs = ExclusiveRuns()
        self._entered = threading.local()
        self._thread: threading.Thread | None = None
        self._schedules: WorkerSchedules | None = None

    def before_worker_boot(self, broker, worker) -> None:
        # Before: worker threads start taking messages while the worker is still booting.

        queues = sorted(worker.consumer_whitelist or {q_name(name) for name in broker.get_declared_queues()})
        self._info = workers.WorkerInfo(
            worker_id=broker.broker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            ppid=os.getppid(),
            queues=queues,
            threads=worker.worker_threads,
            started_at=time.time(),
        )
        config = get_task_config()
        self._slots = InFlightSlots(config.dramatiq.state_path, broker.broker_id, slots=worker.worker_threads * 2 + 4)
        if config.schedules_in_workers and config.schedules:
            self._schedules = WorkerSchedules(config.schedules, interval=config.dramatiq.heartbeat_interval_ms / 1000)
        self._beat(broker)
        self._thread = threading.Thread(target=self._run, args=(broker,), name="tasks-worker-registry", daemon=True)
        self._thread.start()

    def before_process_message(self, broker, message) -> None:
        if self._slots is None:
            return
        alone = type(message) is MessageProxy and message.__dict__.get(REDELIVERED_ATTRIBUTE, False)
        self._runs.enter(alone)
        self._entered.alone = alone
        message = unwrapped(message)
        options = message.options
        self._slots.start(
            alone=alone,
            redis_id=options.get("redis_message_id", message.message_id),
            message_id=message.message_id,
            queue=message.queue_name,
            actor=message.actor_name,
            retries=options.get("retries", 0),
            prior_attempts=options.get("prior_attempts", 0),
            enqueued_ms=message.message_timestamp,
        )

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._finish()

    def after_skip_message(self, broker, message) -> None:
        self._finish()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()

    def after_worker_shutdown(self, broker, worker) -> None:

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._slots is not None:
            self._slots.close()
        if self._info is not None:
            try:
                workers.unregister(self._info.worker_id)
            except Exception:
                logger.exception("Could not remove worker %s from the registry.", self._info.worker_id)

    def _finish(self) -> None:
        if self._info is None:
            return
        alone = getattr(self._entered, "alone", None)
        if alone is not None:  # a skip emitted before our before_process_message entered nothing
            self._entered.alone = None
            self._runs.leave(alone)
        self._slots.finish()
        with self._lock:
            self._info.tasks_processed += 1

    def _beat(self, broker) -> None:

        workers.publish(self._info)

    def _run(self, broker) -> None:

        interval = get_task_config().dramatiq.heartbeat_interval_ms / 1000
        steps = [("heartbeat", self._beat), ("recovery", recover_dead_workers), ("reconcile", reconcile_if_due)]
        if self._schedules is not None:
            steps.append(("schedules", lambda broker: self._schedules.fire_due()))
        while not self._stop.wait(interval):
            for name, step in steps:
                try:
                    step(broker)
                except Exception:
                    logger.exception("Worker registry %s failed; retrying in %.1fs.", name, interval)
                    if name == "heartbeat":  # Redis unreachable: the other steps would fail alike
                        break
