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
    concurrency: int | None = None,
    rate_limit: str | tuple[int, int] | None = None,
    **options: Any,
) -> Any:
    """Declare an actor. Defaults come from ``TASK_CONFIG.dramatiq``: queue ``default_queue``,
    ``max_retries`` (5), backoff doubling from ``min_backoff_ms`` (1 s) to ``max_backoff_ms`` (5 min),
    ``time_limit_ms``. Transient errors retry; permanent ones (ValueError, KeyError, TypeError,
    PermanentError) go to the dead letter queue at once. Times are in milliseconds, as in dramatiq.

    ``unique_key``: a callable given the job's arguments (or a string) naming what may run only once
    at a time; a second job with the same key joins the first while it waits or runs (see
    ``apps.tasks.enqueue.enqueue``).

    ``concurrency``: at most this many of the actor's jobs run at once, in all workers.
    ``rate_limit``: at most so many start per period: ``"10/s"``, ``"100/m"``, ``"1000/h"``, or
    ``(count, seconds)``. A job finding no free slot waits (``apps.tasks.services.limits``).
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
        name = f"{function.__module__}.{function.__qualname__}"
        if concurrency is not None:
            if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
                raise ValueError(f"@task {name}: concurrency must be a positive integer, not {concurrency!r}")
            options["concurrency"] = concurrency
        if rate_limit is not None:
            options["rate_limit"] = parse_rate_limit(rate_limit, name)
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


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_rate_limit(value: str | tuple[int, int], where: str = "@task") -> tuple[int, int]:
    """``"100/m"`` or ``(100, 60)`` as (count, seconds); ValueError naming ``where`` otherwise."""
    try:
        if isinstance(value, str):
            count_text, _, period = value.replace(" ", "").partition("/")
            count, seconds = int(count_text), _PERIODS[period[:1].lower()]  # "100/minute" too
        else:
            count, seconds = (int(part) for part in value)
    except (ValueError, KeyError, TypeError):
        count = seconds = 0
    if count < 1 or seconds < 1:
        raise ValueError(
            f"{where}: rate_limit must be like '10/s', '100/m', '1000/h' or (count, seconds), not {value!r}"
        )
    return count, seconds
