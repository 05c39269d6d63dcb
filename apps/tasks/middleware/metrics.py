"""Count finished jobs and their durations for Prometheus, summed over every worker process."""

from __future__ import annotations

import logging
import os
import threading
import time

from dramatiq.middleware import Middleware

from apps.tasks.services import metrics

logger = logging.getLogger(__name__)


class MetricsMiddleware(Middleware):
    """Counts completed and failed attempts, dead-lettered messages and attempt durations per queue
    and actor, and adds them to totals in Redis (``services.metrics``) once per ``flush_interval``
    seconds from a background thread, and at worker shutdown. A SIGKILL loses at most one interval
    of counts; the totals never go down. Installed when ``TASK_CONFIG.metrics_enabled`` is on.

    Why not dramatiq's Prometheus middleware: it serves each host's worker processes on a port of
    their own (default 0.0.0.0:9191) from a shared temp directory, and knows nothing of queue
    depths, dead letters or live workers; totals in Redis are one series for all hosts, served by
    the web app next to the gauges it reads from Redis at scrape time.
    """

    flush_interval = 1.0

    def __init__(self) -> None:
        self._buffer = metrics.MetricsBuffer()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def before_process_message(self, broker, message) -> None:
        self._local.started = time.monotonic()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        started = getattr(self._local, "started", None)
        if started is None:
            return
        self._local.started = None
        seconds = time.monotonic() - started
        self._buffer.finished(message.queue_name, message.actor_name, seconds, failed=exception is not None)
        self._ensure_thread(broker)

    def after_nack(self, broker, message) -> None:
        self._buffer.dead_lettered(message.queue_name, message.actor_name)
        self._ensure_thread(broker)

    def after_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush(broker)

    def flush(self, broker) -> None:
        """Add what was counted since the last flush to the totals in Redis; keep it on failure."""
        pending = self._buffer.drain()
        if not pending:
            return
        try:
            metrics.write(broker.client, broker.namespace, pending)
        except Exception:
            logger.exception("Could not write job metrics; will retry.")
            self._buffer.restore(pending)

    def _ensure_thread(self, broker) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, args=(broker,), name="tasks-metrics", daemon=True)
                self._thread.start()

    def _run(self, broker) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush(broker)
