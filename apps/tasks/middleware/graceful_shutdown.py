"""Put back at once the messages a stopping worker could not finish within its shutdown timeout."""

from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)


class GracefulShutdownMiddleware(Middleware):
    """On SIGTERM dramatiq stops taking messages, returns prefetched ones to Redis and waits up to
    ``--worker-shutdown-timeout`` (``worker_shutdown_timeout_ms``) for running tasks. A task still
    running then dies with the process, and its message stays in the worker's acknowledgement set
    until a heartbeat timeout and a maintenance pass bring it back: a minute or more with nothing
    running it.

    This middleware remembers which message each worker thread is running and, once the worker
    has shut down, puts the ones still running back on their queues in one call per queue, so
    another worker (or this one, restarted by systemd or supervisor) starts them again at once.
    A task that finishes in the last instant is then run twice: delivery is at least once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, object] = {}

    def before_process_message(self, broker, message) -> None:
        with self._lock:
            self._running[threading.get_ident()] = message

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        with self._lock:
            self._running.pop(threading.get_ident(), None)

    after_skip_message = after_process_message

    def after_worker_shutdown(self, broker, worker) -> None:
        with self._lock:
            unfinished, self._running = list(self._running.values()), {}
        if not unfinished:
            return
        by_queue: dict[str, list] = {}
        for message in unfinished:
            by_queue.setdefault(message.queue_name, []).append(message)
        for queue_name, messages in by_queue.items():
            redis_ids = [message.options["redis_message_id"] for message in messages]
            try:
                broker.do_requeue(queue_name, *redis_ids)
            except Exception:
                logger.exception("Could not requeue %d unfinished message(s) on %s.", len(redis_ids), queue_name)
                continue
            for message in messages:
                logger.warning(
                    "Shutdown timeout reached while %s (job %s) was running on %s: requeued.",
                    message.actor_name,
                    message.message_id,
                    queue_name,
                )
