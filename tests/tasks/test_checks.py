"""A database migrated under the app's old label ``tasks``: migrate stops with the fix, the command
moves the history, migrate then has nothing to do and the records are still there."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.utils import timezone

from apps.tasks.checks import LEGACY_MIGRATIONS, check_legacy_label
from apps.tasks.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


def relabel(old: str, new: str, names: tuple[str, ...] = LEGACY_MIGRATIONS) -> None:
    with connection.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(names))
        cursor.execute(f"UPDATE django_migrations SET app = %s WHERE app = %s AND name IN ({placeholders})",  # noqa: S608
                       [new, old, *names])  # fmt: skip
        cursor.execute("UPDATE django_content_type SET app_label = %s WHERE app_label = %s", [new, old])


def test_a_database_of_the_old_label_is_adopted_without_losing_records():
    now = timezone.now()
    JobRecord.objects.create(
        message_id="kept", actor_name="add", queue_name="default", status=JobStatus.COMPLETED, enqueued_at=now,
        updated_at=now,
    )  # fmt: skip
    relabel("dramatiq_tasks", "tasks")  # as a database migrated before the label changed (no 0004 yet)
    try:
        [error] = check_legacy_label(databases=["default"])
        assert error.id == "dramatiq_tasks.E001" and "tasks_adopt_label" in error.hint
        with pytest.raises(SystemCheckError, match="old label 'tasks'"):
            call_command("migrate", "--noinput", skip_checks=False, stdout=io.StringIO())

        out = io.StringIO()
        call_command("tasks_adopt_label", stdout=out)
        assert "Moved 0001_initial, 0002_jobrecord_backend, 0003_drop_message_id_like_index" in out.getvalue()
        assert check_legacy_label(databases=["default"]) == []
        plan = io.StringIO()
        call_command("migrate", "--plan", stdout=plan)
        assert "No planned migration operations" in plan.getvalue()
        assert JobRecord.objects.get(message_id="kept").status == JobStatus.COMPLETED
        again = io.StringIO()
        call_command("tasks_adopt_label", stdout=again)
        assert "Nothing to move" in again.getvalue()
    finally:
        relabel("tasks", "dramatiq_tasks")
