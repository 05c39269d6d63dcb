"""``@task``: dramatiq.actor with this project's defaults for queue, retries, backoff and time limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq_abort import Abort

from apps.tasks.config import get_task_config
from apps.tasks.errors import retry_predicate


def task(
    fn: Callable | None = None,
    *,
    actor_name: str | None = None,
    queue_name: str | None = None,
    max_retries: int | None = None,
    min_backoff: int | None = None,
    max_backoff: int | None = None,
    time_limit: int | None = None,
    retry_when: Callable[[int, BaseException], bool] | None = None,
    priority: int = 0,
    **options: Any,
) -> Any:
    """Declare an actor. Defaults come from ``TASK_CONFIG.dramatiq``: queue ``default_queue``,
    ``max_retries`` (5), backoff doubling from ``min_backoff_ms`` (1 s) to ``max_backoff_ms`` (5 min),
    ``time_limit_ms``. Transient errors retry; permanent ones (ValueError, KeyError, TypeError,
    PermanentError) go to the dead letter queue at once. Times are in milliseconds, as in dramatiq.

    ``unique_key``: a callable given the job's arguments (or a string) naming what may run only once
    at a time; a second job with the same key joins the first while it waits or runs (see
    ``apps.tasks.enqueue.enqueue``).
    """

    def decorate(function: Callable) -> dramatiq.Actor:
        config = get_task_config().dramatiq
        queue = queue_name or config.default_queue
        if queue not in config.queues:
            raise ValueError(
                f"@task {function.__module__}.{function.__qualname__}: unknown queue {queue!r}; "
                f"configured queues: {', '.join(config.queues)}"
            )
        retries = config.max_retries if max_retries is None else max_retries
        # An aborted job is expected, not "an unhandled exception" with a traceback in the log.
        throws = (Abort, *_as_tuple(options.pop("throws", ())))
        return dramatiq.actor(
            function,
            actor_name=actor_name,
            queue_name=queue,
            priority=priority,
            max_retries=retries,
            min_backoff=config.min_backoff_ms if min_backoff is None else min_backoff,
            max_backoff=config.max_backoff_ms if max_backoff is None else max_backoff,
            time_limit=config.time_limit_ms if time_limit is None else time_limit,
            retry_when=retry_when or retry_predicate(retries),
            throws=throws,
            **options,
        )

    return decorate(fn) if fn is not None else decorate


def _as_tuple(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,) if value else ()
