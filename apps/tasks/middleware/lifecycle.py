"""Record every message's lifecycle in the database and on the events stream."""

from __future__ import annotations

import gc
import logging
import threading
import time
import traceback

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from dramatiq.worker import ConsumerThread
from dramatiq_abort import Abort

from apps.tasks import records
from apps.tasks.config import get_task_config
from apps.tasks.logging import JobContext, current_job
from apps.tasks.masking import mask_text
from apps.tasks.middleware.limits import DEFERRED_ATTRIBUTE
from apps.tasks.notifications import notify_dead_letter
from apps.tasks.records import Transition, attempt_number, now, payload, transition_for, worker_label
from apps.tasks.records.serialization import stored_result
from apps.tasks.services.control import abort_text
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)


def unwrapped(message: dramatiq.Message | MessageProxy) -> dramatiq.Message:
    """The Message inside a worker's MessageProxy: its fields are then plain attributes, not a
    ``__getattr__`` call each (a dozen per transition, on every message)."""
    return message._message if type(message) is MessageProxy else message


def _drop_discarded_result_warning(record: logging.LogRecord) -> bool:
    return not (isinstance(record.msg, str) and "returned a value that is not None" in record.msg)


class LifecycleMiddleware(Middleware):
    """Records each message's transitions (pending → running → completed; failed → retrying →
    completed or dead_letter; skipped) through ``apps.tasks.records``, which also publishes the
    events they imply.

    It must sit just before ``Retries``: dramatiq runs ``after_*`` hooks in reverse order, so
    ``after_process_message`` here sees whether Retries scheduled a retry or failed the message.
    Writes go through the process's batching buffer (see ``records.buffer``).
    """

    #: ``@task(unique_key=...)``: see apps.tasks.enqueue; the key is freed here once the job is over.
    actor_options = frozenset({"unique_key"})

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
        if records.recorded_by_caller(message.message_id):
            return
        if isinstance(threading.current_thread(), ConsumerThread):
            # A worker moving a due message from its delay queue to the queue: not a new job.
            return
        if getattr(self._local, "message_id", None) == message.message_id:
            # Retries re-enqueueing the message this thread is processing.
            self._local.retry_delay = delay
            return
        records.record(records.pending(message, delay=delay))

    def before_process_message(self, broker, message) -> None:
        message = unwrapped(message)
        self._local.message_id = message.message_id
        self._local.retry_delay = None
        self._local.started = time.monotonic()
        self._local.started_at = now()
        self._local.attempt = attempt = attempt_number(message.options)
        # Every log line of this thread until after_process_message carries the job (apps.tasks.logging).
        current_job.set(
            JobContext(message.message_id, message.actor_name, message.queue_name, attempt, message.message_timestamp)
        )
        records.record(
            transition_for(
                message, JobStatus.RUNNING, attempts=attempt, started_at=self._local.started_at, worker=worker_label()
            )
        )

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        finished_at = now()
        proxy, message = message, unwrapped(message)  # the proxy knows whether Retries failed it
        # Retries may already have counted this failure in the message's options: use the start's count.
        attempt = getattr(self._local, "attempt", None) or attempt_number(message.options)
        if exception is None:
            transition = self._finished(message, JobStatus.COMPLETED, finished_at, attempt)
            config = get_task_config()
            transition.result, exact = stored_result(result, config.record_args_max_bytes, config.secret_arg_keys)
            if exact is not None:
                transition.result_payload = payload.seal(exact)
            records.record(transition)
            _release_unique(broker, message)
        elif isinstance(exception, Abort):
            # An operator aborted it (services.control.abort_job): over, not a failure to retry or
            # dead-letter. Retries failed the message (errors.is_permanent); ack it instead.
            proxy.failed = False
            text, meta = abort_text(message.message_id)
            transition = self._finished(
                message,
                JobStatus.CANCELLED,
                finished_at,
                attempt,
                error_type=f"{type(exception).__module__}.{type(exception).__qualname__}",
                error_message=mask_text(text),
                event="aborted",
                meta=meta,
            )
            records.record(transition)
            _release_unique(broker, message)
        else:
            transition = self._finished(
                message,
                JobStatus.FAILED,
                finished_at,
                attempt,
                error_type=f"{type(exception).__module__}.{type(exception).__qualname__}",
                error_message=mask_text(str(exception)[:10_000]),
                traceback=mask_text(message.options.get("traceback") or _format(exception)),
            )
            retry_delay = getattr(self._local, "retry_delay", None)
            if proxy.failed:
                transition.status = JobStatus.DEAD_LETTER
            elif retry_delay is not None:
                records.retrying(transition, retry_delay)
            records.record(transition)
            if transition.status != JobStatus.RETRYING:
                _release_unique(broker, message)
            if transition.status == JobStatus.DEAD_LETTER:
                notify_dead_letter(transition)
        self._local.message_id = None
        current_job.set(None)

    def after_skip_message(self, broker, message) -> None:
        if getattr(message, DEFERRED_ATTRIBUTE, False):
            return  # waiting for a slot (middleware.limits): sent again, its pending record comes with it
        message = unwrapped(message)
        records.record(self._finished(message, JobStatus.SKIPPED, now(), attempt_number(message.options)))
        _release_unique(broker, message)
        self._local.message_id = None
        current_job.set(None)

    def before_worker_shutdown(self, broker, worker) -> None:
        records.flush()

    def after_worker_shutdown(self, broker, worker) -> None:
        records.stop()

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


def _release_unique(broker, message) -> None:
    """Free the job's unique key (enqueue's ``unique_key``) now that it is over."""
    unique_key = message.options.get("unique_key")
    if unique_key and hasattr(broker, "release_unique"):
        try:
            broker.release_unique(unique_key, message.message_id)
        except Exception:  # Redis down: the next enqueue sees the finished holder and takes the key
            logger.warning("Job %s: could not free unique key %r.", message.message_id, unique_key, exc_info=True)


def _format(exception: BaseException) -> str:
    return "".join(traceback.format_exception(type(exception), exception, exception.__traceback__, limit=30))
