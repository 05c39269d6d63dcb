"""Replace a worker process that grew too big or ran too many tasks, without losing a message."""

from __future__ import annotations

import logging
import os
import signal
import threading

from dramatiq.middleware import Middleware

from apps.tasks.config import get_task_config

logger = logging.getLogger(__name__)

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


class MemoryGuardMiddleware(Middleware):
    """When this worker process passes ``max_worker_memory_mb`` of RSS or has run
    ``max_tasks_per_worker`` tasks, ask the dramatiq main process to reload (SIGHUP): every
    worker process finishes its running tasks, returns its prefetched messages to Redis, and is
    replaced by a fresh one. Both limits come from ``TASK_CONFIG.dramatiq`` and are off by default.
    """

    #: Reading /proc costs a system call: check memory every N tasks.
    memory_check_every = 10

    def __init__(self) -> None:
        config = get_task_config().dramatiq
        self.max_tasks = config.max_tasks_per_worker
        self.max_rss = config.max_worker_memory_mb * 1024 * 1024 if config.max_worker_memory_mb else None
        self._count = 0
        self._lock = threading.Lock()
        self._requested = False

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._after_task()

    def after_skip_message(self, broker, message) -> None:
        self._after_task()

    def _after_task(self) -> None:
        if self.max_tasks is None and self.max_rss is None:
            return
        with self._lock:
            self._count += 1
            count = self._count
            if self._requested:
                return
        reason = None
        if self.max_tasks is not None and count >= self.max_tasks:
            reason = f"ran {count} tasks (max_tasks_per_worker={self.max_tasks})"
        elif self.max_rss is not None and count % self.memory_check_every == 0:
            rss = current_rss_bytes()
            if rss > self.max_rss:
                reason = f"RSS {rss // 2**20} MiB over max_worker_memory_mb={self.max_rss // 2**20}"
        if reason is None:
            return
        with self._lock:
            if self._requested:
                return
            self._requested = True
        logger.warning("Worker process %d %s: asking for a graceful replacement.", os.getpid(), reason)
        os.kill(os.getppid(), signal.SIGHUP)
