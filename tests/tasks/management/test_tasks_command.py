"""``manage.py tasks``: tables and JSON from the same services as the admin and the API."""

from __future__ import annotations

import json
from io import StringIO

import dramatiq
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.tasks import keys
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services import control, dead_letters
from tests.helpers import process_env, run_manage, wait_for
from tests.tasks.middleware.test_lifecycle import wait_for_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command("tasks", *args, stdout=out)
    return out.getvalue()


def test_queues_table_and_json(broker_redis, clean_queues):
    enqueue(tasks.low_noop)
    enqueue(tasks.low_noop)
    table = run("queues")
    assert table.splitlines()[0].split()[:3] == ["queue", "ready", "in"]
    low_row = next(line for line in table.splitlines() if line.startswith("low"))
    assert low_row.split()[1] == "2"
    for args in (("--json", "queues"), ("queues", "--json")):  # before or after the action
        data = json.loads(run(*args))
        assert {row["name"]: row["ready"] for row in data}["low"] == 2, args


def test_json_after_any_action_and_the_top_level_flag_is_not_reset(broker_redis, clean_queues):
    assert json.loads(run("stats", "--minutes", "1", "--json"))["completed"] == 0
    assert json.loads(run("--json", "stats", "--minutes", "1"))["completed"] == 0
    assert json.loads(run("jobs", "--json")) == [] and json.loads(run("workers", "--json")) == []
    assert run("jobs") == "(none)\n"  # without --json anywhere: a table
    assert json.loads(run("pause", "low", "--json")) == {"paused": "low"}
    assert json.loads(run("resume", "low", "--json")) == {"resumed": "low"}


def test_jobs_with_filters(broker_redis, clean_queues):
    low_id = enqueue(tasks.low_noop)
    enqueue(tasks.add, args=(1, 2))
    data = json.loads(run("--json", "jobs", "--queue", "low"))
    assert [row["id"] for row in data] == [low_id]
    assert "low_noop" in run("jobs", "--actor", "low_noop")
    with pytest.raises(CommandError, match="unknown queue 'nope'; configured queues: default, high, low, knowledge"):
        run("jobs", "--queue", "nope")


@pytest.mark.worker
def test_dead_list_requeue_and_delete(start_worker, broker_redis, clean_queues):
    start_worker("--processes", "1", "--threads", "2", "--queues", "default")
    ids = [enqueue(tasks.broken, args=(f"reason {index}",)) for index in range(3)]
    for message_id in ids:
        wait_for_status(message_id, JobStatus.DEAD_LETTER)
    wait_for(lambda: len(dead_letters.list_dead_letters("default")) == 3)
    listed = json.loads(run("--json", "dead", "--queue", "default"))
    assert {row["message_id"] for row in listed} == set(ids)
    assert "Deleted 1 dead letter(s)." in run("dead", "--delete", ids[0])
    assert "Requeued 1 dead letter(s)." in run("dead", "--requeue", ids[1])
    wait_for_status(ids[1], JobStatus.DEAD_LETTER)  # still broken: dead again, after a second attempt
    assert JobRecord.objects.get(message_id=ids[1]).attempts == 2
    with pytest.raises(CommandError, match="no dead letter"):
        run("dead", "--requeue", "no-such-id")

    wait_for(lambda: len(dead_letters.list_dead_letters("default")) == 2)
    requeued = json.loads(run("--json", "dead", "--requeue", "--all"))["requeued"]
    assert sorted(requeued) == sorted(ids[1:])
    dead_again = JobRecord.objects.filter(message_id__in=ids[1:], status=JobStatus.DEAD_LETTER)
    wait_for(lambda: dict(dead_again.values_list("message_id", "attempts")) == {ids[1]: 3, ids[2]: 2}, timeout=30)
    wait_for(lambda: len(dead_letters.list_dead_letters("default")) == 2)
    assert "Deleted 2 dead letter(s)." in run("dead", "--delete", "--all")
    assert dead_letters.list_dead_letters("default") == []


def put_dead_letter(broker_redis, redis_id: str, data: bytes = b"\xff\x00not json") -> None:
    """A dead letter on queue 'low' without a worker (corrupt unless ``data`` is an encoded message)."""
    namespace = dramatiq.get_broker().namespace
    broker_redis.zadd(keys.dead_letters(namespace, "low"), {redis_id: 1_700_000_000_000})
    broker_redis.hset(keys.dead_letter_messages(namespace, "low"), redis_id, data)


def test_dead_requeue_and_delete_take_an_id_or_all(broker_redis, clean_queues):
    for args, message in (
        (("--requeue",), "--requeue needs a dead letter ID or --all"),
        (("--delete",), "--delete needs a dead letter ID or --all"),
        (("--requeue", "some-id", "--all"), "one of them, not both"),
        (("--all",), "--all goes with --requeue or --delete"),
    ):
        with pytest.raises(CommandError, match=message):
            run("dead", *args)
    put_dead_letter(broker_redis, "corrupt-1")
    put_dead_letter(broker_redis, "corrupt-2")
    assert "Requeued 0 dead letter(s)." in run("dead", "--requeue", "--all", "--queue", "low")  # corrupt: skipped
    assert json.loads(run("dead", "--delete", "--all", "--json")) == {"deleted": 2}
    assert dead_letters.count_dead_letters("low")["low"] == 0


def test_tables_mark_cut_text_and_json_keeps_it_whole(broker_redis, clean_queues):
    message = "the upstream service answered 503 " + "x" * 80 + "\nsecond line of the error"
    now = timezone.now()
    JobRecord.objects.create(
        message_id="long-error", actor_name="add", queue_name="default", status=JobStatus.DEAD_LETTER,
        enqueued_at=now, updated_at=now, error_type="builtins.RuntimeError", error_message=message,
    )  # fmt: skip
    table = run("jobs").splitlines()
    row = next(line for line in table if line.startswith("long-error"))
    shown = row.split("RuntimeError: ", 1)[1].rstrip()
    assert shown.endswith("…") and len("RuntimeError: " + shown) == 60
    assert ("RuntimeError: " + message).startswith("RuntimeError: " + shown[:-1])
    assert table[-1] == "(error cut at 60 chars; use --json for the full text)"
    assert json.loads(run("jobs", "--json"))[0]["error_message"] == message

    put_dead_letter(broker_redis, "long-args", dramatiq.Message("low", "low_noop", ("y" * 100,), {}, {}).encode())
    table = run("dead").splitlines()
    assert table[1].rstrip().endswith('["' + "y" * 37 + "…")
    assert table[-1] == "(args cut at 40 chars; use --json for the full text)"
    (letter,) = json.loads(run("dead", "--json"))
    assert letter["args"] == ["y" * 100]


def test_short_values_are_not_marked_as_cut(broker_redis, clean_queues):
    enqueue(tasks.low_noop)
    table = run("jobs")
    assert "…" not in table and "cut at" not in table


def test_info_log_lines_stay_out_of_a_real_commands_output(broker_redis, clean_queues):
    """As a user runs it: a subprocess with the project's logging, stdout parsed as JSON."""
    first, second = enqueue(tasks.low_noop), enqueue(tasks.low_noop)
    env = process_env()
    done = run_manage("tasks", "--json", "cancel", first, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cancelled": [first], "refused": {}}
    assert " INFO " not in done.stderr and "cancelled by" not in done.stderr, done.stderr

    paused = run_manage("tasks", "pause", "default", "--json", env=env)
    try:
        assert json.loads(paused.stdout) == {"paused": "default"}
        assert "WARNING" in paused.stderr and "Queue default paused by" in paused.stderr  # warnings stay
    finally:
        control.resume_queue("default", by="test")

    verbose = run_manage("tasks", "-v", "2", "--json", "cancel", second, env=env)  # -v 2: INFO lines again
    assert json.loads(verbose.stdout) == {"cancelled": [second], "refused": {}}
    assert "INFO apps.tasks.services.control" in verbose.stderr and f"Job {second}" in verbose.stderr


def test_purge_refused_without_debug_and_needs_confirmation(broker_redis, clean_queues, settings):
    pending = enqueue(tasks.low_noop)
    settings.DEBUG = False
    with pytest.raises(CommandError, match="Refusing to purge 'low' with DEBUG off"):
        run("purge", "low", "--yes")
    settings.DEBUG = True
    with pytest.raises(CommandError, match="confirmation"):
        run("purge", "low")  # no terminal to ask in, no --yes
    with pytest.raises(CommandError, match="unknown queue"):
        run("purge", "nope", "--yes")
    assert "Purged 1 message(s) from 'low'." in run("purge", "low", "--yes")
    assert json.loads(run("--json", "queues"))[2]["ready"] == 0
    assert JobRecord.objects.get(message_id=pending).status == JobStatus.SKIPPED
    settings.DEBUG = False
    assert "Purged 0" in run("purge", "low", "--yes", "--force")


def test_stats_counts_completed_and_failed_per_minute():
    from django.utils import timezone

    now = timezone.now()
    for index, status in enumerate(["completed"] * 6 + ["dead_letter"] * 2 + ["running"]):
        JobRecord.objects.create(
            message_id=f"s{index}", actor_name="add", queue_name="default", status=status,
            enqueued_at=now, updated_at=now,
        )  # fmt: skip
    data = json.loads(run("--json", "stats", "--minutes", "2"))
    assert (data["completed"], data["failed"], data["completed_per_minute"]) == (6, 2, 3.0)
    assert data["failure_rate"] == 0.25
    assert "25.0%" in run("stats", "--minutes", "2")


def test_retry_sends_finished_jobs_again_and_names_the_ones_it_cannot(broker_redis, clean_queues):
    now = timezone.now()
    JobRecord.objects.create(
        message_id="done-1", actor_name="add", queue_name="default", status=JobStatus.COMPLETED, args=[1, 2],
        enqueued_at=now, updated_at=now,
    )  # fmt: skip
    waiting = enqueue(tasks.add, args=(3, 4))
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 of 2 job"):
        call_command("tasks", "retry", "done-1", waiting, stdout=out, stderr=err)
    new_id = JobRecord.objects.get(message_id="done-1").retried_as
    assert f"Retried done-1 as {new_id}." in out.getvalue()
    assert JobRecord.objects.get(message_id=new_id).args == [1, 2]
    assert "Not retried:" in err.getvalue() and "only finished jobs" in err.getvalue()

    data = json.loads(run("retry", "done-1", "--json"))  # a finished job can be retried again
    assert data["refused"] == {} and list(data["retried"]) == ["done-1"]
