"""Standard Django Tasks code on our Dramatiq workers: enqueue, results, failures, delay, priority.

Runs against django.tasks (Django >= 6.0) or the django-tasks backport (Django 5.2), whichever is installed.
"""

from __future__ import annotations

import io
from datetime import timedelta

import dramatiq
import pytest
from django.core import checks
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from apps.tasks.backends import DramatiqBackend, InvalidTaskError, ResultDoesNotExist, TaskResultStatus
from apps.tasks.models import JobRecord
from tests.helpers import redis_test_key, wait_finished, wait_for
from tests.testapp import framework_tasks

pytestmark = pytest.mark.django_db(transaction=True)
WORKER = ("--processes", "1", "--threads", "2", "--queues", "default")


@pytest.fixture(scope="module")
def module_worker(start_module_worker):
    return start_module_worker(*WORKER)


@pytest.fixture
def worker(module_worker, clean_queues):
    return module_worker


def test_backend_flags_and_configuration():
    backend = framework_tasks.add.get_backend()
    assert isinstance(backend, DramatiqBackend)
    assert (backend.supports_defer, backend.supports_async_task, backend.supports_get_result) == (True, True, True)
    assert backend.supports_priority is True
    assert backend.queues == {"default", "high", "low", "knowledge"}


def test_unknown_queue_is_refused_the_framework_way():
    with pytest.raises(InvalidTaskError, match="Queue 'nope' is not valid for backend"):
        framework_tasks.add.using(queue_name="nope")


@override_settings(TASKS={"default": {"BACKEND": "apps.tasks.backends.DramatiqBackend", "QUEUES": ["default", "x"]}})
def test_checks_flag_queues_the_task_config_does_not_have():
    from tests.testapp.framework_tasks import add

    errors = [message for message in add.get_backend().check() if message.level >= checks.ERROR]
    assert [error.id for error in errors] == ["tasks.E001"]
    assert "x" in errors[0].msg


@pytest.mark.worker
def test_enqueue_runs_on_dramatiq_and_get_result_follows_it(worker, broker_redis):
    go = redis_test_key()
    result = framework_tasks.wait_for_go.enqueue(go)
    assert result.status == TaskResultStatus.READY
    assert JobRecord.objects.get(message_id=result.id).actor_name == "run_django_task"  # our record

    def running():
        result.refresh()
        return result.status == TaskResultStatus.RUNNING

    wait_for(running, timeout=30, message="RUNNING")
    assert result.started_at is not None
    broker_redis.set(go, "1")
    wait_finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == "went"
    assert result.attempts == 1 and result.worker_ids[0].count(":") == 1
    fetched = framework_tasks.wait_for_go.get_result(result.id)
    assert (fetched.status, fetched.return_value, fetched.args) == (TaskResultStatus.SUCCESSFUL, "went", [go])


@pytest.mark.worker
def test_return_values_async_tasks_and_context(worker):
    assert wait_finished(framework_tasks.add.enqueue(2, 3)).return_value == 5
    assert wait_finished(framework_tasks.double_async.enqueue(21)).return_value == 42
    result = wait_finished(framework_tasks.which_attempt.using(priority=5).enqueue())
    seen = result.return_value
    assert (seen["attempt"], seen["id"], seen["priority"]) == (1, result.id, 5)  # the framework counts from 1
    assert seen["worker_ids"] == result.worker_ids and len(seen["worker_ids"]) == 1
    assert seen["enqueued_at"] == result.enqueued_at.isoformat()


def test_an_argument_json_cannot_carry_is_a_type_error_and_writes_nothing(broker_redis, clean_queues):
    before = JobRecord.objects.count()
    with pytest.raises(TypeError, match="Unsupported type"):  # the framework's own message
        framework_tasks.add.enqueue(object(), 1)
    assert JobRecord.objects.count() == before


def test_enqueue_sends_task_enqueued_with_the_result_get_result_gives(broker_redis, clean_queues):
    from apps.tasks.backends import task_enqueued

    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append((sender, task_result))

    task_enqueued.connect(receiver)
    try:
        run_after = timezone.now() + timedelta(hours=1)
        result = framework_tasks.add.using(priority=-20, run_after=run_after).enqueue(1, 2)
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [(DramatiqBackend, result)]
    fetched = framework_tasks.add.get_result(result.id)
    assert fetched.enqueued_at == result.enqueued_at
    assert (fetched.task.priority, fetched.task.run_after) == (-20, run_after)


def test_a_cancelled_job_is_a_failed_result(broker_redis, clean_queues):
    from apps.tasks.services import control

    result = framework_tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 2)
    control.cancel_job(result.id, by="ops (test)")
    fetched = framework_tasks.add.get_result(result.id)
    assert fetched.status == TaskResultStatus.FAILED and fetched.finished_at is not None


@pytest.mark.worker
def test_workers_send_task_started_and_task_finished(worker):
    ok = wait_finished(framework_tasks.add.enqueue(2, 2))
    failed = wait_finished(framework_tasks.explode.enqueue("boom"))
    # The framework's own receivers log each signal (logger django_tasks, or django.tasks on Django 6).
    for result, state in ((ok, "SUCCESSFUL"), (failed, "FAILED")):
        started = f"Task id={result.id} path={result.task.module_path} state=RUNNING"
        finished = f"Task id={result.id} path={result.task.module_path} state={state}"
        wait_for(lambda s=started, f=finished: s in worker.log() and f in worker.log(), timeout=10,
                 message=f"the framework's log lines of {result.id}")  # fmt: skip


@pytest.mark.worker
def test_a_failing_task_ends_failed_with_its_traceback(worker):
    result = wait_finished(framework_tasks.explode.enqueue("kaboom"))
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class is RuntimeError
    assert "kaboom" in error.traceback and "Traceback" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


@pytest.mark.worker
def test_run_after_delays_the_task(worker):
    run_after = timezone.now() + timedelta(seconds=2)
    result = framework_tasks.add.using(run_after=run_after).enqueue(1, 1)
    wait_finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.started_at >= run_after


@pytest.mark.worker
def test_priority_orders_the_whole_range_like_the_database_backend(start_worker, broker_redis, clean_queues):
    order = redis_test_key()
    sent = [(-50, "a"), (0, "b"), (10, "c"), (-10, "d"), (0, "e"), (100, "f"), (-100, "g")]
    for priority, label in sent:
        framework_tasks.record_order.using(priority=priority).enqueue(order, label)
    from apps.tasks.services.queues import queue_stats

    assert queue_stats(("low",))[0].ready == len(sent)
    start_worker("--processes", "1", "--threads", "1", "--queues", "low")
    wait_for(lambda: broker_redis.llen(order) == len(sent), timeout=30, message="every task")
    # Higher first; equal priorities in arrival order (the database backend's ORDER BY).
    assert [item.decode() for item in broker_redis.lrange(order, 0, -1)] == ["f", "c", "b", "e", "d", "a", "g"]


def test_enqueue_inside_a_transaction_is_sent_on_commit(broker_redis, clean_queues):
    queue = f"{dramatiq.get_broker().namespace}:low"  # no worker here consumes "low"
    with transaction.atomic():
        result = framework_tasks.add.using(queue_name="low").enqueue(1, 2)
        assert broker_redis.llen(queue) == 0
    assert broker_redis.llen(queue) == 1
    assert framework_tasks.add.get_result(result.id).status == TaskResultStatus.READY


def test_unknown_result_id():
    with pytest.raises(ResultDoesNotExist):
        framework_tasks.add.get_backend().get_result("no-such-id")


def test_framework_jobs_show_their_task_path_not_the_runner(admin_client, broker_redis, clean_queues):
    result = framework_tasks.add.enqueue(4, 5)
    path = "tests.testapp.framework_tasks.add"
    assert admin_client.get(f"/tasks/api/jobs/{result.id}/").json()["actor"] == path
    page = admin_client.get("/admin/dramatiq_tasks/jobrecord/").content.decode()
    assert path in page
    out = io.StringIO()
    call_command("tasks", "jobs", stdout=out)
    assert path in out.getvalue()


@pytest.mark.worker
def test_results_and_arguments_are_exact_though_records_show_them_masked_and_capped(worker):
    value = {"api_token": "t-123", "tokenizer": "bert", "text": "y" * 20_000}
    result = wait_finished(framework_tasks.echo.enqueue(value))
    fetched = framework_tasks.echo.get_result(result.id)
    assert fetched.args == [value] and fetched.return_value == value
    record = JobRecord.objects.get(message_id=result.id)
    assert not record.args_complete and "t-123" not in str(record.args) + str(record.result)
    assert "t-123" not in record.payload + record.result_payload  # sealed, not in clear


def test_queues_empty_means_any_configured_queue(settings):
    settings.TASKS = {"default": {"BACKEND": "apps.tasks.backends.DramatiqBackend", "QUEUES": []}}
    framework_tasks.add.using(queue_name="high")  # any queue TASK_CONFIG has
    with pytest.raises(InvalidTaskError, match="Queue 'elsewhere' is not configured in TASK_CONFIG"):
        framework_tasks.add.using(queue_name="elsewhere")
