"""Job records and lifecycle events, written in batches by one background thread per process.

A synchronous database round-trip per transition costs more than a typical task, so worker
threads only hand transitions to an in-memory buffer. A flusher thread coalesces them per
message (pending → running → completed written once), upserts each batch in one transaction,
and publishes the events to the Redis stream in one pipeline. A transition carries its time;
the upsert never lets an older transition overwrite a newer one that another process wrote.
The buffer is flushed at worker shutdown; a SIGKILL loses at most one flush interval of
transitions, and the broker redelivers the unacknowledged messages, which are recorded again.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.db import connections, transaction

from .serialization import stored_arguments

logger = logging.getLogger(__name__)

SOURCE = "dramatiq"
MAX_BUFFERED = 100_000
MINUTE_COUNTS_TTL_SECONDS = 2 * 3600
#: Terminal statuses counted per minute for the dashboard, and the series they count in.
_COUNTED_STATUSES = {"completed": "completed", "failed": "failed", "dead_letter": "failed"}

#: Columns written for every transition, in the upsert's order.
COLUMNS = (
    "message_id",
    "actor_name",
    "queue_name",
    "args",
    "kwargs",
    "args_complete",
    "status",
    "attempts",
    "error_type",
    "error_message",
    "traceback",
    "result",
    "enqueued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "worker",
    "next_retry_at",
    "updated_at",
    "backend",
)
#: Kept from the stored row when a later transition does not know them.
_KEEP_IF_EMPTY = ("error_type", "error_message", "traceback")
_KEEP_IF_NULL = ("started_at", "result")
#: Never changed once inserted.
_INSERT_ONLY = ("message_id", "actor_name", "queue_name", "args", "kwargs", "args_complete", "enqueued_at", "backend")


def now() -> datetime:
    return datetime.now(timezone.utc)


def from_millis(millis: int | float) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


_worker_label: tuple[int, str] = (0, "")


def worker_label() -> str:
    """``host:pid`` of this process."""
    global _worker_label
    if _worker_label[0] != os.getpid():
        _worker_label = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}")
    return _worker_label[1]


@dataclass(slots=True)
class Transition:
    """One state change of one message, with everything needed to insert its record if missing."""

    message_id: str
    actor_name: str
    queue_name: str
    status: str
    enqueued_at: datetime
    args: Any = ()
    kwargs: Any = field(default_factory=dict)
    attempts: int = 0
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    result: Any = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    worker: str = ""
    next_retry_at: datetime | None = None
    updated_at: datetime = field(default_factory=now)
    #: Which system runs the job ("dramatiq" or "temporal"); set when the record is inserted.
    backend: str = SOURCE

    def merged_after(self, earlier: Transition) -> Transition:
        """This transition, keeping what ``earlier`` knew and this one does not."""
        if earlier.updated_at > self.updated_at:
            return earlier.merged_after(self)
        for name in _KEEP_IF_EMPTY:
            if not getattr(self, name):
                setattr(self, name, getattr(earlier, name))
        for name in _KEEP_IF_NULL:
            if getattr(self, name) is None:
                setattr(self, name, getattr(earlier, name))
        return self


_JSON_COLUMNS = frozenset({"args", "kwargs", "result"})
_DATETIME_COLUMNS = frozenset({"enqueued_at", "started_at", "finished_at", "next_retry_at", "updated_at"})


_sql_cache: dict[tuple[str, str], str] = {}


def _cached_sql(kind: str, connection, build) -> str:
    key = (kind, connection.vendor)
    sql = _sql_cache.get(key)
    if sql is None:
        sql = _sql_cache[key] = build(connection)
    return sql


def _insert_parts(connection) -> tuple[str, str]:
    """``INSERT INTO <records> (<COLUMNS>)`` and the matching placeholders, shared by both statements."""
    from apps.tasks.models import JobRecord

    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in COLUMNS)
    # JSON arrives as text, serialised once; PostgreSQL is told it is jsonb.
    json_placeholder = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    placeholders = ", ".join(json_placeholder if column in _JSON_COLUMNS else "%s" for column in COLUMNS)
    return f"INSERT INTO {quote(JobRecord._meta.db_table)} ({columns})", placeholders


def _insert_new_sql(connection) -> str:
    """INSERT of a new record (PostgreSQL) whose commit skips the fsync wait:
    ``set_config(..., true)`` lasts to the end of the statement's implicit transaction."""
    insert, placeholders = _insert_parts(connection)
    return (
        f"{insert} SELECT {placeholders} "  # noqa: S608 - model identifiers only
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit "
        f"ON CONFLICT ({connection.ops.quote_name('message_id')}) DO NOTHING"
    )


def _upsert_sql(connection) -> str:
    from apps.tasks.models import JobRecord

    quote = connection.ops.quote_name
    table = quote(JobRecord._meta.db_table)
    updates = []
    for column in COLUMNS:
        if column in _INSERT_ONLY:
            continue
        name = quote(column)
        if column in _KEEP_IF_EMPTY:
            updates.append(f"{name} = CASE WHEN excluded.{name} <> '' THEN excluded.{name} ELSE {table}.{name} END")
        elif column in _KEEP_IF_NULL:
            updates.append(f"{name} = COALESCE(excluded.{name}, {table}.{name})")
        else:
            updates.append(f"{name} = excluded.{name}")
    insert, placeholders = _insert_parts(connection)
    return (
        f"{insert} VALUES ({placeholders}) "
        f"ON CONFLICT ({quote('message_id')}) DO UPDATE SET {', '.join(updates)} "
        f"WHERE excluded.{quote('updated_at')} >= {table}.{quote('updated_at')}"
    )


def _row(item: Transition, config, adapt_datetime) -> list[Any]:
    args_json, kwargs_json, complete = stored_arguments(
        item.args, item.kwargs, secret_keys=config.secret_arg_keys, max_bytes=config.record_args_max_bytes
    )
    result_json = None if item.result is None else json.dumps(item.result, separators=(",", ":"))
    return [
        item.message_id,
        item.actor_name,
        item.queue_name,
        args_json,
        kwargs_json,
        complete,
        item.status,
        item.attempts,
        item.error_type,
        item.error_message,
        item.traceback,
        result_json,
        adapt_datetime(item.enqueued_at),
        adapt_datetime(item.started_at),
        adapt_datetime(item.finished_at),
        item.duration_ms,
        item.worker,
        adapt_datetime(item.next_retry_at),
        adapt_datetime(item.updated_at),
        item.backend,
    ]


def _binds_client_side(cursor) -> bool:
    import psycopg

    return isinstance(cursor.cursor, psycopg.ClientCursor)


def write_transitions(transitions: list[Transition], using: str = "default") -> None:
    """Upsert the records of ``transitions`` in one transaction (or the caller's, if one is open)."""
    if not transitions:
        return
    from apps.tasks.config import get_task_config

    config = get_task_config()
    connection = connections[using]
    if connection.vendor == "postgresql":  # psycopg adapts aware datetimes itself

        def adapt_datetime(value):
            return value
    else:
        adapt_datetime = connection.ops.adapt_datetimefield_value
    rows = [_row(item, config, adapt_datetime) for item in transitions]
    sql = _cached_sql("upsert", connection, _upsert_sql)
    if connection.in_atomic_block:  # the caller's transaction: join it, change nothing about it
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)
    elif len(rows) == 1:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql" and _binds_client_side(cursor):
                # One round-trip and no fsync wait (see below): a simple query may hold several statements.
                cursor.execute(f"BEGIN; SET LOCAL synchronous_commit TO OFF; {sql}; COMMIT", rows[0])
            else:
                cursor.execute(sql, rows[0])
    elif connection.vendor == "postgresql":
        with transaction.atomic(using=using):
            with connection.cursor() as cursor:
                # A batch needs no fsync: a record lost in a database crash is written again by the
                # message's next transition (every transition upserts the whole row).
                cursor.execute("SET LOCAL synchronous_commit = off")
            with _server_binding_cursor(connection) as cursor:
                cursor.executemany(sql, rows)
    else:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.executemany(sql, rows)


@contextmanager
def _server_binding_cursor(connection) -> Iterator[Any]:
    """A psycopg cursor binding parameters on the server, where Django's binds them into the SQL
    text: a statement goes once, then only values (psycopg prepares it once it has run
    ``prepare_threshold`` times), so batches are cheaper to send and to parse."""
    import psycopg

    with connection.wrap_database_errors:
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            yield cursor


def insert_new_record(transition: Transition, using: str = "default") -> None:
    """Write the record of a message just built (``enqueue``'s hot path): its id is new, so there is
    no row to merge with.

    On PostgreSQL in autocommit this is one statement on a server-side-binding cursor, which
    psycopg prepares once it has run a few times (``prepare_threshold``; set it to None in the
    database OPTIONS behind a transaction-pooling PgBouncer), and whose commit does not wait for
    fsync: a record lost in a database crash is written again by the message's next transition,
    as every transition upserts the whole row. Elsewhere it is ``write_transitions``.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.in_atomic_block or not connection.get_autocommit():
        write_transitions([transition], using=using)
        return
    from apps.tasks.config import get_task_config

    row = _row(transition, get_task_config(), lambda value: value)
    sql = _cached_sql("insert_new", connection, _insert_new_sql)
    with _server_binding_cursor(connection) as cursor:
        cursor.execute(sql, row)


def event_fields(
    event: str,
    *,
    job_id: str,
    queue: str,
    actor: str,
    meta: dict[str, Any] | None = None,
    at: datetime | None = None,
    source: str = SOURCE,
) -> dict[str, str]:
    """A lifecycle event in the stream's schema (flat string fields, ``meta`` as JSON); ``source``
    says which system ran the job, so one stream serves dramatiq and Temporal."""
    if meta and len(meta) == 1 and type(meta.get("attempt")) is int:
        meta_json = f'{{"attempt":{meta["attempt"]}}}'  # the common case, without json.dumps
    else:
        meta_json = json.dumps(meta or {}, default=str, separators=(",", ":"))
    return {
        "id": next_event_id(),
        "source": source,
        "event": event,
        "job_id": job_id,
        "queue": queue,
        "actor": actor,
        "meta": meta_json,
        "timestamp": (at or now()).isoformat(),
    }


_event_ids: tuple[int, str, itertools.count] = (0, "", itertools.count(1))


def next_event_id() -> str:
    """Unique across processes: a random per-process prefix and a counter (cheaper than uuid4)."""
    global _event_ids
    pid, prefix, counter = _event_ids
    if pid != os.getpid():  # a forked child must not repeat its parent's ids
        pid, prefix, counter = _event_ids = (os.getpid(), uuid.uuid4().hex[:16], itertools.count(1))
    return f"{prefix}-{next(counter):x}"


def publish_events(events: list[dict[str, str]]) -> None:
    """Append events to the namespace's capped stream, in order, in one round-trip."""
    if not events:
        return
    import dramatiq

    from apps.tasks.config import get_task_config

    broker = dramatiq.get_broker()
    if hasattr(broker, "publish_events"):  # a stub broker (tasks disabled) has no stream
        broker.publish_events(events, get_task_config().events_max_length)


class Recorder:
    """The per-process buffer and its flusher thread."""

    def __init__(self, flush_interval: float) -> None:
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._transitions: dict[str, Transition] = {}
        self._events: list[dict[str, str]] = []
        #: (broker, queue, command) → Redis message ids to ack/nack once their records are committed.
        self._settlements: dict[tuple[Any, str, str], list[str]] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.pid = os.getpid()

    def record(self, transition: Transition, event: dict[str, str] | None = None) -> None:
        with self._lock:
            earlier = self._transitions.get(transition.message_id)
            self._transitions[transition.message_id] = (
                transition.merged_after(earlier) if earlier is not None else transition
            )
            if event is not None:
                self._events.append(event)
            overfull = len(self._transitions) >= 1000
        self._ensure_thread()
        if overfull:
            self._wake.set()

    def event(self, event: dict[str, str]) -> None:
        with self._lock:
            self._events.append(event)
        self._ensure_thread()

    def settle_after_flush(self, broker: Any, queue_name: str, redis_message_id: str, command: str) -> None:
        """Ack/nack a message once the records buffered so far are committed."""
        with self._lock:
            self._settlements.setdefault((broker, queue_name, command), []).append(redis_message_id)
        self._ensure_thread()

    def flush(self) -> None:
        """Write everything buffered so far; on failure keep it for the next attempt."""
        with self._flush_lock:
            with self._lock:
                transitions, self._transitions = self._transitions, {}
                events, self._events = self._events, []
                settlements, self._settlements = self._settlements, {}
            try:
                write_transitions(list(transitions.values()))
            except Exception:
                logger.exception("Could not write %d job records; will retry.", len(transitions))
                self._requeue(transitions)
                with self._lock:
                    for key, ids in settlements.items():
                        self._settlements.setdefault(key, [])[:0] = ids
                connections["default"].close()
            else:
                self._settle(settlements)
                self._count_finished(transitions.values())
            try:
                publish_events(events)
            except Exception:
                logger.exception("Could not publish %d lifecycle events; will retry.", len(events))
                with self._lock:
                    self._events = (events + self._events)[-MAX_BUFFERED:]

    def _count_finished(self, transitions) -> None:
        """Per-minute completed/failed counters in Redis, for the dashboard chart (one round-trip)."""
        counts: dict[tuple[int, str], int] = {}
        for item in transitions:
            if item.status in _COUNTED_STATUSES and item.finished_at is not None:
                key = (int(item.finished_at.timestamp() // 60), _COUNTED_STATUSES[item.status])
                counts[key] = counts.get(key, 0) + 1
        if not counts:
            return
        try:
            import dramatiq

            from apps.tasks import keys
            from apps.tasks.broker import get_redis

            namespace = dramatiq.get_broker().namespace
            pipeline = get_redis().pipeline(transaction=False)
            for (minute, status), count in counts.items():
                pipeline.hincrby(keys.minute_counts(namespace, minute), status, count)
                pipeline.expire(keys.minute_counts(namespace, minute), MINUTE_COUNTS_TTL_SECONDS)
            pipeline.execute()
        except Exception:
            logger.exception("Could not update the per-minute job counters.")

    def _settle(self, settlements: dict[tuple[Any, str, str], list[str]]) -> None:
        for (broker, queue_name, command), ids in settlements.items():
            try:
                broker.settle_many(queue_name, command, ids)
            except Exception:
                logger.exception("Could not %s %d messages on %s; will retry.", command, len(ids), queue_name)
                with self._lock:
                    self._settlements.setdefault((broker, queue_name, command), [])[:0] = ids

    def _requeue(self, transitions: dict[str, Transition]) -> None:
        with self._lock:
            for message_id, transition in transitions.items():
                later = self._transitions.get(message_id)
                self._transitions[message_id] = later.merged_after(transition) if later else transition
            if len(self._transitions) > MAX_BUFFERED:
                logger.error("Job record buffer over %d entries: dropping the oldest.", MAX_BUFFERED)
                for message_id in list(self._transitions)[: len(self._transitions) - MAX_BUFFERED]:
                    del self._transitions[message_id]

    def pending(self) -> int:
        with self._lock:
            settling = sum(len(ids) for ids in self._settlements.values())
            return len(self._transitions) + len(self._events) + settling

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="tasks-recorder", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.wait(self.flush_interval * (2 ** min(failures, 6)))
            self._wake.clear()
            before = self.pending()
            self.flush()
            failures = failures + 1 if before and self.pending() >= before else 0
        try:
            self.flush()
        finally:
            connections.close_all()

    def stop(self) -> None:
        """Flush and stop the thread (worker shutdown)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()


_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> Recorder:
    """This process's recorder (a forked worker process gets its own)."""
    global _recorder
    if _recorder is None or _recorder.pid != os.getpid():
        with _recorder_lock:
            if _recorder is None or _recorder.pid != os.getpid():
                from apps.tasks.config import get_task_config

                _recorder = Recorder(get_task_config().record_flush_interval_ms / 1000)
                atexit.register(_recorder.flush)
    return _recorder


def wait_until_flushed(timeout: float = 10.0) -> bool:
    """Flush this process's buffer now; True when nothing is left (tests and shutdown)."""
    recorder = get_recorder()
    deadline = time.monotonic() + timeout
    while True:
        recorder.flush()
        if recorder.pending() == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
