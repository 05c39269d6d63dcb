"""Take an actor's concurrency and rate slots (``@task(concurrency=..., rate_limit=...)``, see
``services.limits``) before its job starts, and give them back when it ends.

A job that finds no free slot does not run and does not fail: it is sent again, delayed (a short
backoff for concurrency, growing with each wait up to a few seconds; about a second for a rate),
and acknowledged. The wait is a delivery, so it counts in the job's attempts (the next delivery has
its own Redis id) but it uses none of its retries. The record stays ``pending``, due again.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack

from dramatiq.common import compute_backoff
from dramatiq.middleware import Middleware, SkipMessage

from apps.tasks.services.limits import limits_for

#: On the MessageProxy of a job sent again to wait for a slot: LifecycleMiddleware records no skip.
DEFERRED_ATTRIBUTE = "tasks_deferred"
#: Options of the delivery sent again: how many times it waited, and the attempts made so far.
WAITS_OPTION = "limit_waits"
#: Backoff of a job waiting for a concurrency slot: from this, doubling per wait, to MAX_WAIT_MS.
MIN_WAIT_MS = 100
MAX_WAIT_MS = 5_000
#: A rate slot frees within a second (the sliding window's buckets), or at the next fixed bucket.
RATE_WAIT_MS = 1_000


def _drop_deferral_warning(record: logging.LogRecord) -> bool:
    # dramatiq logs "Message %s was skipped." at WARNING for every SkipMessage; a wait is routine.
    return not (record.args and getattr(record.args[0], DEFERRED_ATTRIBUTE, False))


class LimitsMiddleware(Middleware):
    """Per-actor concurrency and rate limits. It sits before LifecycleMiddleware, so a job that waits
    is never recorded running."""

    actor_options = frozenset({"concurrency", "rate_limit"})

    def __init__(self) -> None:
        self._local = threading.local()

    def before_worker_boot(self, broker, worker) -> None:
        logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_drop_deferral_warning)

    def before_process_message(self, broker, message) -> None:
        limits = limits_for(broker, message.actor_name)
        if limits is None:
            return
        slots = ExitStack()
        for limiter in limits.limiters:
            if not slots.enter_context(limiter.acquire(raise_on_failure=False)):
                slots.close()  # give back what was taken
                self._defer(broker, message, rate=limiter is not limits.concurrent)
                raise SkipMessage(f"waiting for a free slot of {message.actor_name}")
        self._local.slots = slots

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        slots = getattr(self._local, "slots", None)
        if slots is not None:
            self._local.slots = None
            slots.close()

    after_skip_message = after_process_message

    def _defer(self, broker, message, *, rate: bool) -> None:
        waits = message.options.get(WAITS_OPTION, 0)
        delay = RATE_WAIT_MS if rate else compute_backoff(waits, factor=MIN_WAIT_MS, max_backoff=MAX_WAIT_MS)[1]
        options = {WAITS_OPTION: waits + 1, "prior_attempts": message.options.get("prior_attempts", 0) + 1}
        broker.enqueue(message.copy(options=options), delay=delay)
        setattr(message, DEFERRED_ATTRIBUTE, True)
