"""Threads for synchronous activities that look after Django's database connections.

Django keeps one connection per thread and closes stale ones only at request boundaries; an
activity thread has none. Closing old connections around each call does what dramatiq's
``DbConnectionsMiddleware`` does per message: no connection outlives ``CONN_MAX_AGE`` or a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def _with_fresh_connections(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from django.db import close_old_connections

    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


class ActivityExecutor(ThreadPoolExecutor):
    """The worker's ``activity_executor`` (activities and local activities run here)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return super().submit(_with_fresh_connections, fn, *args, **kwargs)
