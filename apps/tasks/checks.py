"""System checks of the tasks app.

The app's label was ``tasks`` before it became ``dramatiq_tasks`` (a user app called ``tasks``
collided with it). A database migrated under the old label records the app's migrations as
``tasks``: ``migrate`` would then try to create the job records table again. The database check
below stops ``migrate`` with the fix; ``manage.py tasks_adopt_label`` renames the rows (the
table kept its name, ``tasks_jobrecord``).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks
from django.db import DatabaseError, connections

LEGACY_LABEL = "tasks"
LABEL = "dramatiq_tasks"
#: The migrations that existed under the old label.
LEGACY_MIGRATIONS = ("0001_initial", "0002_jobrecord_backend", "0003_drop_message_id_like_index")


def legacy_migrations(alias: str = "default") -> list[str]:
    """This app's migrations recorded under the old label in database ``alias`` (none when another
    installed app has that label: its rows are its own)."""
    if LEGACY_LABEL in apps.app_configs:
        return []
    connection = connections[alias]
    if "django_migrations" not in connection.introspection.table_names():
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = %s", [LEGACY_LABEL])
        return sorted(name for (name,) in cursor.fetchall() if name in LEGACY_MIGRATIONS)


def adopt_legacy_label(alias: str = "default") -> list[str]:
    """Move this app's migration rows and content type from the old label to the new one; the
    migrations moved (none when there was nothing to do)."""
    from django.db import transaction

    moved = legacy_migrations(alias)
    if not moved:
        return []
    connection = connections[alias]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(moved))
        cursor.execute(
            f"UPDATE django_migrations SET app = %s WHERE app = %s AND name IN ({placeholders})",  # noqa: S608
            [LABEL, LEGACY_LABEL, *moved],
        )
        if "django_content_type" in connection.introspection.table_names():
            cursor.execute(
                "UPDATE django_content_type SET app_label = %s WHERE app_label = %s AND model = %s",
                [LABEL, LEGACY_LABEL, "jobrecord"],
            )
    return moved


@checks.register(checks.Tags.database)
def check_legacy_label(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    for alias in databases or ():
        try:
            found = legacy_migrations(alias)
        except DatabaseError:
            continue  # an unreachable database is reported by what uses it
        if found:
            errors.append(
                checks.Error(
                    f"Database {alias!r} records this app's migrations under its old label {LEGACY_LABEL!r} "
                    f"({', '.join(found)}); migrate would create the job records table again.",
                    hint=f"Run `manage.py tasks_adopt_label --database {alias}` once, then migrate.",
                    id="dramatiq_tasks.E001",
                )
            )
    return errors
