"""Structured logs: the job's id, actor, queue and attempt on every line logged while it runs."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid

import dramatiq
import pytest
from dramatiq.broker import MessageProxy

from apps.tasks.enqueue import enqueue
from apps.tasks.logging import (
    JobContext,
    JobContextFilter,
    JsonFormatter,
    PlainFormatter,
    current_job,
    logging_config,
    quiet_console,
)
from apps.tasks.middleware.lifecycle import LifecycleMiddleware
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import wait_for
from tests.testapp import tasks


def make_record(message: str, *args, exc_info=None) -> logging.LogRecord:
    record = logging.LogRecord("tests.tasks", logging.WARNING, __file__, 1, message, args, exc_info)
    JobContextFilter().filter(record)
    return record


def test_lines_outside_a_job_have_empty_job_fields():
    line = json.loads(JsonFormatter().format(make_record("hello %s", "world")))
    assert line["message"] == "hello world"
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.tasks"
    assert {line[name] for name in ("job_id", "actor", "queue", "attempt")} == {None}
    assert "job_id=" not in PlainFormatter().format(make_record("hello"))


def test_lines_inside_a_job_carry_it_in_both_formats():
    token = current_job.set(JobContext("abc-123", "send_mail", "default", 2))
    try:
        record = make_record("sending")
        json_line = json.loads(JsonFormatter().format(record))
        plain_line = PlainFormatter().format(record)
    finally:
        current_job.reset(token)
    assert (json_line["job_id"], json_line["actor"], json_line["queue"], json_line["attempt"]) == (
        "abc-123", "send_mail", "default", 2,
    )  # fmt: skip
    assert plain_line.endswith("sending job_id=abc-123 actor=send_mail queue=default attempt=2")


def test_passwords_in_messages_and_tracebacks_are_masked():
    try:
        raise ConnectionError("cannot reach redis://user:hunter2@redis.internal:6379/2")
    except ConnectionError:
        record = make_record("failed on %s", "redis://:hunter2@h:6379/0", exc_info=sys.exc_info())
    for text in (JsonFormatter().format(record), PlainFormatter().format(record)):
        assert "hunter2" not in text
        assert "***" in text
    assert "Traceback" in json.loads(JsonFormatter().format(record))["exc_info"]


def test_logging_config_builds_one_handler_with_the_job_filter():
    config = logging_config("json", "DEBUG")
    handler = config["handlers"]["console"]
    assert handler["filters"] == ["job_context", "masking"]
    assert config["formatters"][handler["formatter"]]["()"] == "apps.tasks.logging.JsonFormatter"
    assert config["root"] == {"handlers": ["console"], "level": "DEBUG"}
    with pytest.raises(ValueError, match="xml"):
        logging_config("xml")


@pytest.mark.django_db(transaction=True)
def test_lifecycle_sets_the_job_context_for_the_run_only():
    message = MessageProxy(
        dramatiq.Message(queue_name="default", actor_name="add", args=(1, 2), kwargs={}, options={"retries": 1})
    )
    middleware = LifecycleMiddleware()
    broker = dramatiq.get_broker()
    assert current_job.get() is None
    middleware.before_process_message(broker, message)
    assert current_job.get() == JobContext(message.message_id, "add", "default", 2, message.message_timestamp)
    middleware.after_process_message(broker, message, result=3)
    assert current_job.get() is None

    middleware.before_process_message(broker, message)
    middleware.after_process_message(broker, message, exception=RuntimeError("boom"))
    assert current_job.get() is None
    middleware.before_process_message(broker, message)
    middleware.after_skip_message(broker, message)
    assert current_job.get() is None


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_task_lines_carry_job_actor_queue_and_attempt(start_worker, broker_redis, clean_queues):
    key = f"{dramatiq.get_broker().namespace}:test:flaky:{uuid.uuid4().hex}"
    worker = start_worker("--processes", "1", "--threads", "2", "--queues", "default", "low", TASKS_LOG_FORMAT="json")
    flaky_id = enqueue(tasks.flaky, args=(key, 2))  # fails twice, succeeds on attempt 3
    purge_id = enqueue("purge_job_records_task")

    def finished():
        records = JobRecord.objects.filter(message_id__in=[flaky_id, purge_id], status=JobStatus.COMPLETED)
        return records.count() == 2

    wait_for(finished, timeout=60, message="both jobs completed")
    lines = wait_for(
        lambda: (
            [line for line in json_lines(worker.log()) if line["job_id"] in (flaky_id, purge_id)]
            if "Purged" in worker.log()
            else None
        ),
        timeout=10,
        message="the task log lines",
    )

    failures = [line for line in lines if line["job_id"] == flaky_id and "Failed to process message" in line["message"]]
    assert [line["attempt"] for line in failures] == [1, 2]
    assert {(line["actor"], line["queue"]) for line in failures} == {("flaky", "default")}
    assert all("TransientError" in line["exc_info"] for line in failures)
    (purged,) = [line for line in lines if line["message"].startswith("Purged")]
    assert (purged["job_id"], purged["actor"], purged["queue"], purged["attempt"]) == (
        purge_id, "purge_job_records_task", "low", 1,
    )  # fmt: skip
    # Lines of worker processes outside any job (boot, shutdown) are JSON too, with empty job fields.
    ready = [line for line in json_lines(worker.log()) if "ready for action" in line["message"]]
    assert ready and ready[0]["job_id"] is None


def test_quiet_console_raises_console_handlers_only_and_puts_them_back(tmp_path):
    logger = logging.getLogger(f"tests.quiet.{uuid.uuid4().hex}")
    console, elsewhere = logging.StreamHandler(sys.stderr), logging.StreamHandler(io.StringIO())
    to_file = logging.FileHandler(tmp_path / "all.log")
    strict = logging.StreamHandler(sys.stderr)
    strict.setLevel(logging.ERROR)
    handlers = (console, elsewhere, to_file, strict)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with quiet_console():
            assert [handler.level for handler in handlers] == [logging.WARNING, 0, 0, logging.ERROR]
            assert logger.level == logging.INFO  # the logger still passes INFO to a file or a shipper
            logger.info("kept in the file")
        assert [handler.level for handler in handlers] == [0, 0, 0, logging.ERROR]
        to_file.flush()
        assert "kept in the file" in (tmp_path / "all.log").read_text()
        assert elsewhere.stream.getvalue() == "kept in the file\n"
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        to_file.close()
