"""Which failures are worth retrying.

Transient errors (a connection dropped, a time-out) are retried with backoff; permanent
errors (bad arguments, a bug that will fail the same way again) go to the dead letter
queue at once. Anything else is retried up to the actor's limit, as dramatiq does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from dramatiq_abort import Abort


class TransientError(Exception):
    """Raise to ask for a retry: the same call may succeed later."""


class PermanentError(Exception):
    """Raise to send the message to the dead letter queue without retrying."""


class MessageLost(RuntimeError):
    """A job's message vanished from Redis (a restart without persistence, a failed send) and could
    not be sent again from its record; the record says why."""


class UnknownQueueError(ValueError):
    """A queue name that is not configured; the message lists the valid ones."""


class MalformedMessage(ValueError):
    """A queue entry that is no dramatiq message (garbage, truncated or partial JSON, no body, a bad
    field): it is moved to the dead letters as it is, and its record says why."""

    def __init__(self, reason: str, *, message_id: str | None = None, actor_name: str | None = None) -> None:
        super().__init__(reason)
        self.message_id = message_id
        self.actor_name = actor_name


def _optional_exceptions(*paths: str) -> tuple[type[BaseException], ...]:
    """Exception classes of libraries that may not be installed (HTTP clients)."""
    from importlib import import_module

    found = []
    for path in paths:
        module_name, _, name = path.rpartition(".")
        try:
            found.append(getattr(import_module(module_name), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _transient_types() -> tuple[type[BaseException], ...]:
    import redis
    from django import db
    from dramatiq.errors import BrokerConnectionError

    return (
        TransientError,
        ConnectionError,  # includes ConnectionResetError, BrokenPipeError, ...
        TimeoutError,
        socket.timeout,
        redis.ConnectionError,
        redis.TimeoutError,
        db.OperationalError,
        db.InterfaceError,
        BrokerConnectionError,
        *_optional_exceptions(
            "http.client.RemoteDisconnected",
            "urllib.error.URLError",
            "psycopg.OperationalError",
            "requests.ConnectionError",
            "requests.Timeout",
            "httpx.TransportError",
            "urllib3.exceptions.HTTPError",
        ),
    )


PERMANENT_TYPES: tuple[type[BaseException], ...] = (PermanentError, ValueError, KeyError, TypeError)
_transient_cache: tuple[type[BaseException], ...] | None = None


def is_transient(exception: BaseException) -> bool:
    global _transient_cache
    if _transient_cache is None:
        _transient_cache = _transient_types()
    return isinstance(exception, _transient_cache)


def is_permanent(exception: BaseException) -> bool:
    """Permanent unless it is also a transient kind (UnicodeError is a ValueError, TransientError wins).
    An aborted job (dramatiq_abort.Abort, asked for by an operator) is never retried."""
    return isinstance(exception, Abort) or (isinstance(exception, PERMANENT_TYPES) and not is_transient(exception))


def retry_predicate(max_retries: int) -> Callable[[int, BaseException], bool]:
    """A ``retry_when`` for dramatiq's Retries: ``retries`` is how many retries already happened."""

    def should_retry(retries: int, exception: BaseException) -> bool:
        return retries < max_retries and not is_permanent(exception)

    should_retry.max_retries = max_retries  # type: ignore[attr-defined]
    return should_retry
