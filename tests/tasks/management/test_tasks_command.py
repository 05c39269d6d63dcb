"""``manage.py tasks``: tables and JSON from the same services as the admin and the API."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services import dead_letters
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
    data = json.loads(run("--json", "queues"))
    assert {row["name"]: row["ready"] for row in data}["low"] == 2


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
    from tests.helpers import wait_for

    wait_for(lambda: len(dead_letters.list_dead_letters("default")) == 3)
    listed = json.loads(run("--json", "dead", "--queue", "default"))
    assert {row["message_id"] for row in listed} == set(ids)
    assert "Deleted 1 dead letter(s)." in run("dead", "--delete", ids[0])
    assert "Requeued 1 dead letter(s)." in run("dead", "--requeue", ids[1])
    wait_for_status(ids[1], JobStatus.DEAD_LETTER)  # still broken: dead again, after a second attempt
    assert JobRecord.objects.get(message_id=ids[1]).attempts == 2
    with pytest.raises(CommandError, match="no dead letter"):
        run("dead", "--requeue", "no-such-id")


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
