"""Record every message's lifecycle in the database and on the events stream."""

from __future__ import annotations

import contextvars
import gc
import logging
import threading
import time
from datetime import timedelta

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from dramatiq.worker import ConsumerThread

from apps.tasks.logging import JobContext, current_job
from apps.tasks.services.recorder import Transition, event_fields, from_millis, get_recorder, now, worker_label
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)

#: Set by the enqueue helper while it sends a message whose record it has already written.
recorded_by_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("recorded_by_caller", default=None)


_running = threading.local()


def current_message_id() -> str | None:
    """The id of the message this worker thread is running (None outside a task)."""
    return getattr(_running, "message_id", None)


def attempt_number(message: dramatiq.Message) -> int:
    """1 for the first delivery; counts retries and attempts made before a dead letter was requeued."""
    return message.options.get("prior_attempts", 0) + message.options.get("retries", 0) + 1


def unwrapped(message: dramatiq.Message | MessageProxy) -> dramatiq.Message:
    """The Message inside a worker's MessageProxy: its fields are then plain attributes, not a
    ``__getattr__`` call each (a dozen per transition, on every message)."""
    return message._message if type(message) is MessageProxy else message


def transition_for(message: dramatiq.Message, status: str, **values) -> Transition:
    message = unwrapped(message)
    return Transition(
        message_id=message.message_id,
        actor_name=message.actor_name,
        queue_name=message.queue_name,
        status=status,
        enqueued_at=from_millis(message.message_timestamp),
        args=message.args,
        kwargs=message.kwargs,
        **values,
    )


def _drop_discarded_result_warning(record: logging.LogRecord) -> bool:
    return not (isinstance(record.msg, str) and "returned a value that is not None" in record.msg)


class LifecycleMiddleware(Middleware):
    """Writes a job record per message (pending → running → completed; failed → retrying →
    completed or dead_letter; skipped) and publishes each transition as an event.

    It must sit just before ``Retries``: dramatiq runs ``after_*`` hooks in reverse order, so
    ``after_process_message`` here sees whether Retries scheduled a retry or failed the message.
    Writes go through the process's batching recorder (see ``services.recorder``).
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def before_worker_boot(self, broker, worker) -> None:
        # Return values land in the job record, so dramatiq's "no Results middleware, the value
        # has been discarded" warning (logged for every such task) is wrong here.
        logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_drop_discarded_result_warning)

    def after_worker_boot(self, broker, worker) -> None:
        # What is loaded by now (Django, the apps, the task modules) lives as long as the process:
        # out of the collector's generations, a full collection does not walk it again and again,
        # so it pauses a job's pick-up for far less.
        gc.collect()
        gc.freeze()

    def after_enqueue(self, broker, message, delay) -> None:
        if recorded_by_caller.get() == message.message_id:
            return
        if isinstance(threading.current_thread(), ConsumerThread):
            # A worker moving a due message from its delay queue to the queue: not a new job.
            return
        if getattr(self._local, "message_id", None) == message.message_id:
            # Retries re-enqueueing the message this thread is processing.
            self._local.retry_delay = delay
            return
        transition = transition_for(message, JobStatus.PENDING, attempts=attempt_number(message) - 1)
        get_recorder().record(transition, self._event("enqueued", message, {"delay_ms": delay}))

    def before_process_message(self, broker, message) -> None:
        message = unwrapped(message)
        self._local.message_id = _running.message_id = message.message_id
        self._local.retry_delay = None
        self._local.started = time.monotonic()
        self._local.started_at = now()
        self._local.attempt = attempt = attempt_number(message)
        # Every log line of this thread until after_process_message carries the job (apps.tasks.logging).
        current_job.set(JobContext(message.message_id, message.actor_name, message.queue_name, attempt))
        transition = transition_for(
            message, JobStatus.RUNNING, attempts=attempt, started_at=self._local.started_at, worker=worker_label()
        )
        event = self._event("started", message, {"attempt": attempt}, self._local.started_at)
        get_recorder().record(transition, event)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        from apps.tasks.config import get_task_config
        from apps.tasks.notifications import notify_dead_letter
        from apps.tasks.services.serialization import stored_result

        recorder = get_recorder()
        finished_at = now()
        proxy, message = message, unwrapped(message)  # the proxy knows whether Retries failed it
        # Retries may already have counted this failure in the message's options: use the start's count.
        attempt = getattr(self._local, "attempt", None) or attempt_number(message)
        if exception is None:
            transition = self._finished(message, JobStatus.COMPLETED, finished_at, attempt)
            transition.result = stored_result(result, get_task_config().record_args_max_bytes)
            recorder.record(transition, self._event("completed", message, {"attempt": attempt}, finished_at))
            self._local.message_id = _running.message_id = None
            current_job.set(None)
            return

        error = {
            "error_type": f"{type(exception).__module__}.{type(exception).__qualname__}",
            "error_message": str(exception)[:10_000],
            "traceback": message.options.get("traceback") or _format(exception),
        }
        failed = self._finished(message, JobStatus.FAILED, finished_at, attempt, **error)
        meta = {"attempt": attempt, "error_type": error["error_type"], "error": error["error_message"][:500]}
        recorder.event(self._event("failed", message, meta))
        retry_delay = getattr(self._local, "retry_delay", None)
        if proxy.failed:
            failed.status = JobStatus.DEAD_LETTER
            recorder.record(failed, self._event("dead_letter", message, meta))
            notify_dead_letter(failed)
        elif retry_delay is not None:
            failed.status = JobStatus.RETRYING
            failed.next_retry_at = finished_at + timedelta(milliseconds=retry_delay)
            retry_meta = {**meta, "delay_ms": retry_delay, "next_retry_at": failed.next_retry_at.isoformat()}
            recorder.record(failed, self._event("retrying", message, retry_meta))
        else:
            recorder.record(failed)
        self._local.message_id = _running.message_id = None
        current_job.set(None)

    def after_skip_message(self, broker, message) -> None:
        transition = self._finished(message, JobStatus.SKIPPED, now(), attempt_number(message))
        get_recorder().record(transition, self._event("skipped", message, {}))
        self._local.message_id = _running.message_id = None
        current_job.set(None)

    def before_worker_shutdown(self, broker, worker) -> None:
        get_recorder().flush()

    def after_worker_shutdown(self, broker, worker) -> None:
        get_recorder().stop()

    def _finished(self, message, status: str, finished_at, attempt: int, **values) -> Transition:
        started_at = getattr(self._local, "started_at", None)
        started = getattr(self._local, "started", None)
        duration_ms = int((time.monotonic() - started) * 1000) if started is not None else None
        return transition_for(
            message,
            status,
            attempts=attempt,
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=duration_ms,
            worker=worker_label(),
            **values,
        )

    @staticmethod
    def _event(name: str, message, meta: dict, at=None) -> dict[str, str]:
        return event_fields(
            name, job_id=message.message_id, queue=message.queue_name, actor=message.actor_name, meta=meta, at=at
        )


def _format(exception: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exception), exception, exception.__traceback__, limit=30))
