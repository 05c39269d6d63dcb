"""Drop the ``varchar_pattern_ops`` index PostgreSQL gets for a CharField primary key.

Django adds it for ``LIKE 'prefix%'`` lookups; job ids are only ever looked up whole (the admin
search is exact), so it was one more index to update on every enqueue and every transition.
"""

from django.db import migrations


def drop_like_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("dramatiq_tasks", "JobRecord")
    name = schema_editor._create_index_name(model._meta.db_table, ["message_id"], suffix="_like")
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_like_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("dramatiq_tasks", "JobRecord")
    field = model._meta.get_field("message_id")
    like_index = schema_editor._create_like_index_sql(model, field)
    if like_index is not None:
        schema_editor.execute(like_index)


class Migration(migrations.Migration):
    dependencies = [("dramatiq_tasks", "0002_jobrecord_backend")]

    operations = [migrations.RunPython(drop_like_index, create_like_index)]
