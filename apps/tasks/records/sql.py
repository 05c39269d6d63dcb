"""The job-record statements, per database vendor: an upsert where the newer transition wins, and the
insert of a record just built. Built once per vendor; Django's connection carries them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction

from apps.tasks.config import get_task_config

from .payload import seal
from .serialization import stored_arguments
from .transitions import KEEP_IF_EMPTY, KEEP_IF_NULL, Transition

#: Columns written for every transition, in the statements' order.
COLUMNS = (
    "message_id",
    "actor_name",
    "queue_name",
    "args",
    "kwargs",
    "args_complete",
    "payload",
    "status",
    "attempts",
    "error_type",
    "error_message",
    "traceback",
    "result",
    "result_payload",
    "enqueued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "worker",
    "next_retry_at",
    "updated_at",
    "backend",
)
#: Never changed once inserted.
INSERT_ONLY = (
    "message_id", "actor_name", "queue_name", "args", "kwargs", "args_complete", "payload", "enqueued_at", "backend",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"args", "kwargs", "result"})

_sql_cache: dict[tuple[str, str], str] = {}


def _cached_sql(kind: str, connection, build) -> str:
    key = (kind, connection.vendor)
    sql = _sql_cache.get(key)
    if sql is None:
        sql = _sql_cache[key] = build(connection)
    return sql


def _table(connection) -> str:
    # Imported here: this module loads with the broker's middleware, before models may be imported.
    from apps.tasks.models import JobRecord

    return connection.ops.quote_name(JobRecord._meta.db_table)


def _insert_parts(connection) -> tuple[str, str]:
    """``INSERT INTO <records> (<COLUMNS>)`` and the matching placeholders, shared by both statements."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in COLUMNS)
    # JSON arrives as text, serialised once; PostgreSQL is told it is jsonb.
    json_placeholder = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    placeholders = ", ".join(json_placeholder if column in _JSON_COLUMNS else "%s" for column in COLUMNS)
    return f"INSERT INTO {_table(connection)} ({columns})", placeholders


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
    quote = connection.ops.quote_name
    table = _table(connection)
    updates = []
    for column in COLUMNS:
        if column in INSERT_ONLY:
            continue
        name = quote(column)
        if column in KEEP_IF_EMPTY:
            updates.append(f"{name} = CASE WHEN excluded.{name} <> '' THEN excluded.{name} ELSE {table}.{name} END")
        elif column in KEEP_IF_NULL:
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
    exact = "" if complete else seal({"args": list(item.args or ()), "kwargs": dict(item.kwargs or {})})
    return [
        item.message_id,
        item.actor_name,
        item.queue_name,
        args_json,
        kwargs_json,
        complete,
        exact,
        item.status,
        item.attempts,
        item.error_type,
        item.error_message,
        item.traceback,
        result_json,
        item.result_payload,
        adapt_datetime(item.enqueued_at),
        adapt_datetime(item.started_at),
        adapt_datetime(item.finished_at),
        item.duration_ms,
        item.worker,
        adapt_datetime(item.next_retry_at),
        adapt_datetime(item.updated_at),
        item.backend,
    ]


def _same(value):
    return value


def _binds_client_side(cursor) -> bool:
    import psycopg  # only on PostgreSQL

    return isinstance(cursor.cursor, psycopg.ClientCursor)


def write_transitions(transitions: list[Transition], using: str = "default") -> None:
    """Upsert the records of ``transitions`` in one transaction (or the caller's, if one is open)."""
    if not transitions:
        return
    config = get_task_config()
    connection = connections[using]
    # psycopg adapts aware datetimes itself
    adapt_datetime = _same if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value
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
    import psycopg  # only on PostgreSQL

    with connection.wrap_database_errors:
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            yield cursor


def insert_new(transition: Transition, using: str = "default") -> None:
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
    row = _row(transition, get_task_config(), _same)
    sql = _cached_sql("insert_new", connection, _insert_new_sql)
    with _server_binding_cursor(connection) as cursor:
        cursor.execute(sql, row)


def locked_status(message_id: str, using: str = "default") -> str | None:
    """The job record's status, its row locked to the end of the caller's transaction (None: no record)."""
    from apps.tasks.models import JobRecord

    rows = JobRecord.objects.using(using).select_for_update().filter(message_id=message_id)
    return rows.values_list("status", flat=True).first()


def recorded_status(message_id: str) -> str | None:
    """The status the job's record has now, or None when it has none."""
    from apps.tasks.models import JobRecord

    return JobRecord.objects.filter(message_id=message_id).values_list("status", flat=True).first()
