"""The Django Tasks framework's own behavioural tests, ported to DramatiqBackend with real workers.

References: django-tasks 0.12.0 ``tests/tests/test_tasks.py`` and ``test_immediate_backend.py`` (the
backend-agnostic behaviours), django-tasks-db ``tests/tests.py`` (a backend with real workers and
stored results, the closest to ours). Each test names the reference test(s) it ports. Runs on
django.tasks (Django 6) or the backport (Django 5.2), whichever is installed.

Not ported, being about the database backend's storage or its worker command rather than the
framework's contract:
- index scans, row locks, the exclusive-transaction helpers: the DB backend's queue is a table; ours is Redis.
- ``id_function`` options: our result ids are dramatiq message ids.
- ``prune_db_task_results``: our records have their own retention (purge_job_records_task).
- ``db_worker`` flags (``--batch``, ``--interval``, ``--max-tasks``, ``--worker-id``, queue selection,
  verbose output, SIGINT/SIGTERM handling): our worker is ``rundramatiq``, tested in tests/tasks.
- the DB admin, the ``DBTaskResult`` model, its priority constraint and ordering migrations.
- Dummy/Immediate-only behaviours (results kept in memory, "does not support get_result/run_after").

Known differences, each an ``xfail(strict=True)`` test saying why: equal priorities are not ordered
by run_after first (the database backend's tie-break); an attempt cut short by a killed worker is not
counted in ``attempts`` / ``worker_ids``. Enqueue inside a transaction behaves as the database
backend's does (see that test), which is what the framework's references assert.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import django
import dramatiq
import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.tasks.backends import (
    DramatiqBackend,
    InvalidTaskError,
    ResultDoesNotExist,
    ResultMismatch,
    TaskResultStatus,
    task_enqueued,
)
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord
from apps.tasks.services.records import FRAMEWORK_RUNNER
from tests.helpers import WorkerProcess, redis_test_key, wait_finished, wait_for
from tests.testapp import framework_tasks as tasks

pytestmark = pytest.mark.django_db(transaction=True)

#: The framework's logger: its signal receivers log every enqueue, start and finish there.
FRAMEWORK_LOGGER = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
#: The module's worker consumes "default" only: tasks sent to "low" or "high" wait there untouched.
WORKER = ("--processes", "1", "--threads", "2", "--queues", "default")
IDLE_QUEUE = "low"
# Short heartbeats, so a live worker recovers the messages of a killed one in seconds.
FAST_RECOVERY = {
    "TASKS_HEARTBEAT_TIMEOUT_MS": "3000",
    "TASKS_WORKER_HEARTBEAT_INTERVAL_MS": "300",
    "TASKS_MAINTENANCE_CHANCE": "0",
}
READY_LINE = "Worker process is ready for action"


@pytest.fixture(scope="module")
def module_worker(start_module_worker) -> WorkerProcess:
    return start_module_worker(*WORKER)


@pytest.fixture
def worker(module_worker: WorkerProcess, clean_queues) -> WorkerProcess:
    return module_worker


@pytest.fixture
def enqueued_signals() -> Iterator[list[tuple[type, Any]]]:
    received: list[tuple[type, Any]] = []

    def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
        received.append((sender, task_result))

    task_enqueued.connect(receiver)
    yield received
    task_enqueued.disconnect(receiver)


def framework_lines(log: str, result_id: str) -> list[str]:
    """The framework logger's lines about one result, as ``state=…`` / ``enqueued``, in order."""
    found = []
    for line in log.splitlines():
        if f" {FRAMEWORK_LOGGER} " in line and f"Task id={result_id} " in line:
            found.append("enqueued" if " enqueued " in line else line.split("state=")[1].split()[0])
    return found


def assert_finished_in_order(result: Any) -> None:
    """What every reference asserts of a finished result: all times set, in order."""
    assert result.is_finished
    assert None not in (result.started_at, result.last_attempted_at, result.finished_at)
    assert result.enqueued_at <= result.started_at <= result.finished_at


def vars_of(result: Any) -> dict:
    """A result's fields (dataclasses.asdict would deep-copy the task's function)."""
    fields = ("id", "status", "enqueued_at", "started_at", "finished_at", "last_attempted_at", "args", "kwargs")
    return {name: getattr(result, name) for name in (*fields, "errors", "worker_ids")}


# --- enqueue, results, refresh ----------------------------------------------------------------------


@pytest.mark.parametrize("task", [tasks.noop_task, tasks.noop_task_async], ids=["sync", "async"])
@pytest.mark.parametrize("enqueue_with", ["enqueue", "aenqueue"])
def test_enqueue_returns_a_ready_result_and_signals_it(task, enqueue_with, enqueued_signals, clean_queues):
    # test_tasks: test_enqueue_task, test_enqueue_task_async; db: test_enqueue_task(_async)
    task = task.using(queue_name=IDLE_QUEUE)  # nobody runs it: the stored result stays READY
    if enqueue_with == "enqueue":
        result = task.enqueue(1, two=3)
    else:
        result = async_to_sync(task.aenqueue)(1, two=3)
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    assert result.enqueued_at is not None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert (result.task, result.args, result.kwargs, result.attempts) == (task, [1], {"two": 3}, 0)
    assert result.backend == "default"
    assert enqueued_signals == [(DramatiqBackend, result)]


def test_get_result_and_refresh_of_a_waiting_task_give_the_enqueued_result(clean_queues):
    # test_tasks: test_get_result, test_get_result_async, test_refresh_result
    task = tasks.noop_task.using(queue_name=IDLE_QUEUE)
    result = task.enqueue()
    assert task.get_result(result.id) == result
    assert tasks.noop_task.get_backend().get_result(result.id) == result
    assert async_to_sync(task.aget_result)(result.id) == result
    before = vars_of(result)
    result.refresh()
    assert vars_of(result) == before
    async_to_sync(result.arefresh)()
    assert vars_of(result) == before


@pytest.mark.worker
@pytest.mark.parametrize("refresh_with", ["refresh", "arefresh"])
def test_refresh_follows_the_worker_to_the_result(refresh_with, worker):
    # db: test_refresh_result, test_refresh_result_async, test_run_enqueued_task; test_tasks: test_result(_async)
    if refresh_with == "refresh":
        result = tasks.calculate_meaning_of_life.enqueue()
    else:
        result = async_to_sync(tasks.calculate_meaning_of_life.aenqueue)()
    refresh = result.refresh if refresh_with == "refresh" else async_to_sync(result.arefresh)
    assert (result.status, result.attempts) == (TaskResultStatus.READY, 0)

    def finished() -> bool:
        refresh()
        return result.is_finished

    wait_for(finished, timeout=30, message="the result to finish")
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert_finished_in_order(result)
    assert (result.return_value, result.attempts, result.errors) == (42, 1, [])


@pytest.mark.parametrize("result_id", [str(uuid.uuid4()), "123"], ids=["unknown-uuid", "not-a-uuid"])
def test_a_missing_result_does_not_exist(result_id):
    # test_tasks: test_get_missing_result; db: test_get_missing_result, test_async_get_missing_result,
    # test_invalid_uuid, test_async_invalid_uuid
    backend = tasks.noop_task.get_backend()
    for get in (backend.get_result, async_to_sync(backend.aget_result), tasks.noop_task.get_result):
        with pytest.raises(ResultDoesNotExist):
            get(result_id)
    with pytest.raises(ResultDoesNotExist):
        async_to_sync(tasks.noop_task.aget_result)(result_id)


def test_a_job_of_another_actor_is_no_task_result(broker_redis, clean_queues):
    # db: test_invalid_task_path (a stored row that is no framework task); ours: any dramatiq job
    job_id = enqueue("ping", args=("token",))
    with pytest.raises(ResultDoesNotExist):
        tasks.noop_task.get_backend().get_result(job_id)


def test_a_result_of_another_task_is_a_mismatch(clean_queues):
    # test_tasks: test_get_incorrect_result, test_get_incorrect_result_async
    result = tasks.noop_task_async.using(queue_name=IDLE_QUEUE).enqueue()
    with pytest.raises(ResultMismatch, match="Task does not match"):
        tasks.noop_task.get_result(result.id)
    with pytest.raises(ResultMismatch, match="Task does not match"):
        async_to_sync(tasks.noop_task.aget_result)(result.id)


def test_task_name_and_module_path():
    # test_tasks: test_name, test_module_path, test_task_decorator, test_get_backend
    assert (tasks.noop_task.name, tasks.noop_task_async.name) == ("noop_task", "noop_task_async")
    assert tasks.noop_task.module_path == "tests.testapp.framework_tasks.noop_task"
    assert import_string(tasks.noop_task.module_path) is tasks.noop_task
    assert import_string(tasks.noop_task_async.module_path) is tasks.noop_task_async
    assert tasks.noop_task.backend == "default" and isinstance(tasks.noop_task.get_backend(), DramatiqBackend)


# --- validation ---------------------------------------------------------------------------------------


def test_using_returns_a_new_task_and_chains():
    # test_tasks: test_using_priority, test_using_queue_name, test_using_run_after,
    # test_using_creates_new_instance, test_chained_using
    now = timezone.now()
    task = tasks.noop_task
    assert (task.priority, task.queue_name, task.run_after) == (0, "default", None)
    copy = task.using()
    assert copy == task and copy is not task
    assert task.using(priority=1).priority == 1 and task.using(queue_name="high").queue_name == "high"
    chained = task.using(run_after=now).using(priority=10)
    assert (chained.run_after, chained.priority) == (now, 10)
    assert (task.priority, task.queue_name, task.run_after) == (0, "default", None)


def test_naive_run_after_invalid_priority_and_unknown_queue_are_refused():
    # test_tasks: test_naive_datetime, test_invalid_priority, test_unknown_queue_name
    with pytest.raises(InvalidTaskError, match="run_after must be an aware datetime"):
        tasks.noop_task.using(run_after=datetime.now())  # naive on purpose
    for priority in (-101, 101, 3.1):
        with pytest.raises(InvalidTaskError, match="priority must be a whole number between -100 and 100"):
            tasks.noop_task.using(priority=priority)
    for priority in (100, -100, 0):
        assert tasks.noop_task.using(priority=priority).priority == priority
    with pytest.raises(InvalidTaskError, match="Queue 'queue-2' is not valid for backend"):
        tasks.noop_task.using(queue_name="queue-2")


@pytest.mark.parametrize("enqueue_with", ["enqueue", "aenqueue"])
def test_the_task_is_validated_again_on_enqueue(enqueue_with, clean_queues):
    # test_immediate_backend / db: test_validate_on_enqueue, test_validate_on_aenqueue
    task = tasks.noop_task.using(queue_name="high")  # valid under the project's TASKS
    before = JobRecord.objects.count()
    only_default = {"default": {"BACKEND": "apps.tasks.backends.DramatiqBackend", "QUEUES": ["default"]}}
    with override_settings(TASKS=only_default):
        with pytest.raises(InvalidTaskError, match="Queue 'high' is not valid for backend"):
            if enqueue_with == "enqueue":
                task.enqueue()
            else:
                async_to_sync(task.aenqueue)()
    assert JobRecord.objects.count() == before


@pytest.mark.parametrize("enqueue_with", ["enqueue", "aenqueue"])
def test_an_invalid_argument_is_a_type_error(enqueue_with, clean_queues):
    # test_tasks: test_enqueue_with_invalid_argument, test_aenqueue_with_invalid_argument
    enqueue_method = tasks.noop_task.enqueue if enqueue_with == "enqueue" else async_to_sync(tasks.noop_task.aenqueue)
    before = JobRecord.objects.count()
    with pytest.raises(TypeError, match=re.escape("Unsupported type: <class 'datetime.datetime'>")):
        enqueue_method(datetime.now())
    assert JobRecord.objects.count() == before


@pytest.mark.worker
def test_arguments_are_normalized_the_framework_way(worker):
    # test_utils (normalize_json, which TaskResult applies to args and kwargs): tuples become lists,
    # bytes become str; the task receives what get_result shows.
    result = tasks.echo_arguments.enqueue((1, (2, 3)), key=b"bytes")
    assert (result.args, result.kwargs) == ([[1, [2, 3]]], {"key": "bytes"})
    wait_finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == [[[1, [2, 3]]], {"key": "bytes"}]
    assert tasks.echo_arguments.get_result(result.id).kwargs == {"key": "bytes"}


def test_check_reports_nothing_for_the_project_configuration():
    # test_immediate_backend / db: test_check
    messages = list(tasks.noop_task.get_backend().check())
    assert [message for message in messages if message.level >= checks.WARNING] == []


# --- failures -------------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.parametrize(
    ("task", "exception", "last_line"),
    [
        (tasks.failing_task_value_error, ValueError, "ValueError: This task failed due to ValueError"),
        (tasks.failing_task_system_exit, SystemExit, "SystemExit: This task failed due to SystemExit"),
        (
            tasks.failing_task_keyboard_interrupt,
            KeyboardInterrupt,
            "KeyboardInterrupt: This task failed due to KeyboardInterrupt",
        ),
        (tasks.exit_task, SystemExit, "SystemExit: 1"),
    ],
    ids=["ValueError", "SystemExit", "KeyboardInterrupt", "exit"],
)
def test_a_failing_task_ends_failed_and_the_worker_survives(task, exception, last_line, worker):
    # db: test_failing_task, test_system_exit_task, test_keyboard_interrupt_task, test_worker_doesnt_exit;
    # test_immediate_backend: test_catches_exception (the DB worker fails KeyboardInterrupt tasks too)
    boots = worker.log().count(READY_LINE)
    result = wait_finished(task.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert_finished_in_order(result)
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    (error,) = result.errors
    assert error.exception_class is exception
    assert error.traceback.startswith("Traceback") and error.traceback.endswith(f"{last_line}\n"), error.traceback
    # The same worker process goes on: not restarted, and it runs the next task.
    assert wait_finished(tasks.calculate_meaning_of_life.enqueue()).return_value == 42
    assert worker.process.poll() is None and worker.log().count(READY_LINE) == boots


@pytest.mark.worker
def test_a_complex_exception(worker):
    # test_immediate_backend / db: test_complex_exception
    result = wait_finished(tasks.complex_exception.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert_finished_in_order(result)
    assert result._return_value is None
    assert result.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback


@pytest.mark.worker
def test_a_return_value_json_cannot_carry_fails_the_task(worker):
    # test_immediate_backend / db: test_complex_return_value
    result = wait_finished(tasks.complex_return_value.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert_finished_in_order(result)
    assert result._return_value is None
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback


@pytest.mark.worker
def test_a_job_naming_no_task_fails_without_running_anything(worker, broker_redis):
    # db: test_invalid_task_path, test_missing_task_path, test_task_import_string (the worker fails
    # such a row; here a runner message no ``enqueue()`` made, as a forged or stale message would be)
    ran = redis_test_key("ran:")
    paths = {"tests.testapp.framework_tasks.not_a_task": [ran], "tests.testapp.no_such_module.task": []}
    for path, args in paths.items():
        job_id = enqueue(FRAMEWORK_RUNNER, args=(path, args, {}, False, "default", {}))

        def failed(job_id: str = job_id) -> JobRecord | None:
            # Not retried, so "dead_letter" (a FAILED result) as every failing framework task
            return JobRecord.objects.filter(message_id=job_id, status__in=("failed", "dead_letter")).first()

        record = wait_for(failed, timeout=30, message=f"the job naming {path} to fail")
        assert record.error_type.endswith(("InvalidTask", "InvalidTaskError", "ModuleNotFoundError")), record.error_type
    assert not broker_redis.exists(ran)


# --- context, run_after, priority -------------------------------------------------------------------------


@pytest.mark.worker
def test_takes_context(worker):
    # test_immediate_backend / db: test_takes_context, test_context
    result = wait_finished(tasks.get_task_id.enqueue())
    assert result.return_value == result.id
    result = wait_finished(tasks.check_context.enqueue(1))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors


@pytest.mark.worker
def test_run_after_holds_the_task_until_then(worker):
    # db: test_run_after
    later = tasks.noop_task.using(run_after=timezone.now() + timedelta(hours=10)).enqueue()
    soon_at = timezone.now() + timedelta(seconds=1)
    soon = tasks.noop_task.using(run_after=soon_at).enqueue()
    past = tasks.noop_task.using(run_after=timezone.now() - timedelta(hours=1)).enqueue()
    assert wait_finished(past).status == TaskResultStatus.SUCCESSFUL
    assert wait_finished(soon).status == TaskResultStatus.SUCCESSFUL
    assert soon.started_at >= soon_at
    later.refresh()
    assert later.status == TaskResultStatus.READY
    assert later.task.run_after == tasks.noop_task.get_result(later.id).task.run_after


def run_in_order(start_worker, broker_redis, sent: list[tuple[str, int, datetime | None]]) -> tuple[list, dict]:
    """Enqueue ``(label, priority, run_after)`` tasks on a queue nobody consumes, then start one
    single-threaded worker on it: the labels in the order it ran the due ones, and the results."""
    order = redis_test_key("order:")
    results = {
        label: tasks.record_order.using(priority=priority, run_after=run_after).enqueue(order, label)
        for label, priority, run_after in sent
    }
    due = [label for label, _, run_after in sent if run_after is None or run_after <= timezone.now()]
    start_worker("--processes", "1", "--threads", "1", "--queues", IDLE_QUEUE)
    wait_for(lambda: broker_redis.llen(order) == len(due), timeout=30, message="the due tasks")
    for label in due:
        assert wait_finished(results[label], timeout=10).status == TaskResultStatus.SUCCESSFUL
    for label in set(results) - set(due):  # not due yet: not run
        results[label].refresh()
        assert results[label].status == TaskResultStatus.READY
    return [item.decode() for item in broker_redis.lrange(order, 0, -1)], results


@pytest.mark.worker
@pytest.mark.xfail(
    strict=True,
    reason="Equal priorities run in enqueue order, not by run_after first (the database backend's "
    "ORDER BY priority DESC, run_after, enqueued_at): the Redis queue places a message by priority "
    "only (enqueue_by_priority.lua). The framework does not specify this tie-break.",
)
def test_run_after_and_priority_order_the_due_tasks_like_the_database_backend(start_worker, broker_redis, clean_queues):
    # db: test_run_after_priority: due tasks by priority (higher first), then run_after, then enqueue
    # order; tasks whose run_after is ahead are not due.
    now = timezone.now()
    sent = [
        ("old", 20, now - timedelta(hours=2)),
        ("very_old", 20, now - timedelta(hours=10)),
        ("far_future", 0, now + timedelta(hours=10)),
        ("high_priority_far_future", 10, now + timedelta(hours=10)),
        ("future", 0, now + timedelta(hours=2)),
        ("high_priority", 10, None),
        ("low_priority", 2, None),
        ("lower_priority", -2, None),
    ]
    order, _ = run_in_order(start_worker, broker_redis, sent)
    assert order == ["very_old", "old", "high_priority", "low_priority", "lower_priority"]


@pytest.mark.worker
def test_a_due_run_after_takes_its_place_by_priority(start_worker, broker_redis, clean_queues):
    # db: test_run_after_priority without its run_after tie-break (see the test above): a task whose
    # run_after has passed is due at once, placed by its priority among the others.
    now = timezone.now()
    sent = [
        ("low_priority", 2, None),
        ("old", 20, now - timedelta(hours=2)),
        ("future", 0, now + timedelta(hours=2)),
        ("high_priority_far_future", 10, now + timedelta(hours=10)),
        ("high_priority", 10, None),
        ("lower_priority", -2, None),
        ("past", 0, now - timedelta(hours=1)),
    ]
    order, _ = run_in_order(start_worker, broker_redis, sent)
    assert order == ["old", "high_priority", "low_priority", "past", "lower_priority"]


# --- logs and signals -------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.parametrize(
    ("task", "final_state"),
    [(tasks.noop_task, "SUCCESSFUL"), (tasks.failing_task_value_error, "FAILED")],
    ids=["successful", "failed"],
)
def test_the_framework_logs_enqueue_start_and_finish(task, final_state, worker, caplog):
    # test_immediate_backend: test_enqueue_logs, test_failed_logs, test_catches_exception (the log);
    # db: test_enqueue_logs
    with caplog.at_level(logging.DEBUG, logger=FRAMEWORK_LOGGER):
        result = task.enqueue()
    ours = [record for record in caplog.records if record.name == FRAMEWORK_LOGGER]
    assert len(ours) == 1 and "enqueued" in ours[0].getMessage() and result.id in ours[0].getMessage()
    wait_finished(result)
    # The worker's log, where the task ran: one RUNNING line, then one final line.
    wait_for(lambda: len(framework_lines(worker.log(), result.id)) >= 2, timeout=10, message="the worker's lines")
    assert framework_lines(worker.log(), result.id) == ["RUNNING", final_state]
    if final_state == "FAILED":  # logged with its exception, for error monitoring tools
        after = worker.log().split(f"Task id={result.id} path={task.module_path} state=FAILED", 1)[1]
        assert "Traceback" in after and "ValueError: This task failed due to ValueError" in after


@pytest.mark.worker
@pytest.mark.parametrize("fail", [False, True], ids=["successful", "failed"])
def test_enqueued_started_and_finished_signals(fail, worker, broker_redis):
    # db: _capture_task_enqueued_signal in test_enqueue_task; test_immediate_backend: the signals
    # its worker sends (task_started, task_finished, inside the exception handler for a failure)
    notes = redis_test_key("signals:")
    result = wait_finished(tasks.signal_probe.enqueue(notes, fail=fail))
    wait_for(lambda: broker_redis.llen(notes) >= 3, timeout=10, message="three signals")
    seen = [json.loads(note) for note in broker_redis.lrange(notes, 0, -1)]
    # task_enqueued comes from this process once the message is sent, the others from the worker: a
    # quick worker may note "started" first, so each process's notes are compared in their own order.
    assert [note for note in seen if note[0] == "enqueued"] == [["enqueued", "DramatiqBackend", result.id, "READY", ""]]
    finished = ["FAILED", "RuntimeError"] if fail else ["SUCCESSFUL", ""]
    assert [note for note in seen if note[0] != "enqueued"] == [
        ["started", "DramatiqBackend", result.id, "RUNNING", ""],
        ["finished", "DramatiqBackend", result.id, *finished],
    ]


# --- transactions ------------------------------------------------------------------------------------------


def other_connection_sees(result_id: str) -> bool:
    """Whether another connection (as a worker has) sees the result's record."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            table = JobRecord._meta.db_table
            cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE message_id = %s", [result_id])  # noqa: S608
            return cursor.fetchone()[0] == 1
    finally:
        other.close()


@pytest.mark.worker
def test_enqueue_inside_a_transaction_is_stored_at_once_and_runs_after_commit(worker, broker_redis):
    # db: test_doesnt_wait_until_transaction_commit. The database backend writes its row inside the
    # caller's transaction: enqueue returns at once with enqueued_at, the row is visible to that
    # transaction, and workers see it only once it commits (a rollback drops it). Ours does the same:
    # the record is written inside the transaction and the message is sent when it commits, so a
    # worker never runs a task whose data (or whose own record) it could not yet read. Django's docs
    # advise wrapping enqueue in transaction.on_commit for backends that send at once; with this one
    # that is harmless, not needed.
    with transaction.atomic():
        result = tasks.calculate_meaning_of_life.enqueue()
        assert result.enqueued_at is not None
        assert tasks.calculate_meaning_of_life.get_result(result.id).status == TaskResultStatus.READY
        if connection.vendor != "sqlite":  # SQLite locks the database during this transaction
            assert not other_connection_sees(result.id)
    if connection.vendor != "sqlite":
        assert other_connection_sees(result.id)
    assert wait_finished(result).return_value == 42

    queue = f"{dramatiq.get_broker().namespace}:{IDLE_QUEUE}"  # no worker consumes it
    with transaction.atomic():
        dropped = tasks.calculate_meaning_of_life.using(queue_name=IDLE_QUEUE).enqueue()
        transaction.set_rollback(True)
    with pytest.raises(ResultDoesNotExist):
        tasks.calculate_meaning_of_life.get_result(dropped.id)
    assert broker_redis.llen(queue) == 0  # nothing was sent


# --- several workers, a killed worker -------------------------------------------------------------------


@pytest.mark.worker
def test_multiple_workers_run_each_task_once(start_worker, clean_queues):
    # db: test_multiple_workers
    workers = [start_worker("--processes", "1", "--threads", "1", "--queues", IDLE_QUEUE) for _ in range(3)]
    wait_for(lambda: all(READY_LINE in w.log() for w in workers), timeout=30, message="three workers ready")
    results = [tasks.sleep_for.using(queue_name=IDLE_QUEUE).enqueue(0.1) for _ in range(10)]
    for result in results:
        assert wait_finished(result).status == TaskResultStatus.SUCCESSFUL
    logs = "".join(w.log() for w in workers)
    for result in results:  # ran once: one RUNNING and one SUCCESSFUL line among all the workers
        assert framework_lines(logs, result.id) == ["RUNNING", "SUCCESSFUL"]
    assert len({result.worker_ids[0] for result in results}) > 1  # shared, not all on one worker


def run_and_kill_its_worker(start_worker, broker_redis) -> tuple[Any, WorkerProcess, WorkerProcess]:
    """A task running on a worker that is then killed (SIGKILL), a second worker started, and the
    task allowed to finish: the result once finished, the killed worker and the second one."""
    go = redis_test_key("go:")
    args = ("--processes", "1", "--threads", "1", "--queues", "high")
    victim = start_worker(*args, **FAST_RECOVERY)
    result = tasks.wait_for_go.using(queue_name="high").enqueue(go)

    def running() -> bool:
        result.refresh()
        return result.status == TaskResultStatus.RUNNING

    wait_for(running, timeout=30, message="the task to run")
    victim.kill()
    rescuer = start_worker(*args, **FAST_RECOVERY)
    broker_redis.set(go, "1")
    return wait_finished(result, timeout=30), victim, rescuer


@pytest.mark.worker
def test_a_task_whose_worker_is_killed_is_run_again(start_worker, broker_redis, clean_queues):
    # db: test_kill. The database backend leaves such a task RUNNING for ever (django-tasks-db
    # issue #46); ours gives it to another worker once the dead one's heartbeat times out.
    result, victim, rescuer = run_and_kill_its_worker(start_worker, broker_redis)
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, "went")
    assert framework_lines(victim.log(), result.id) == ["RUNNING"]
    assert framework_lines(rescuer.log(), result.id) == ["RUNNING", "SUCCESSFUL"]


@pytest.mark.worker
@pytest.mark.xfail(
    strict=True,
    reason="An attempt cut short by a worker's death is not counted: attempts and worker_ids (and "
    "context.attempt) come from the message's retry count (records.attempt_number), which "
    "recovery's redelivery does not raise; worker_ids repeats the last worker per attempt.",
)
def test_a_killed_attempt_counts_in_attempts_and_worker_ids(start_worker, broker_redis, clean_queues):
    # db: test_interrupt_signals / test_kill (worker_ids lists each worker that took the task)
    result, _, _ = run_and_kill_its_worker(start_worker, broker_redis)
    assert result.attempts == 2
    assert result.worker_ids[0] != result.worker_ids[1]
