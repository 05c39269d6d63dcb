"""django-dramatiq as a Django user sets it up today: its AdminMiddleware on PostgreSQL.

A plain ``dramatiq.brokers.redis.RedisBroker`` (namespace ``<BENCH_NAMESPACE>-dd``) with
django-dramatiq's own middleware list: dramatiq's defaults, ``AdminMiddleware`` (a Task row per
message, ``update_or_create`` per transition) and ``DbConnectionsMiddleware``. django-dramatiq's
default list names ``dramatiq.middleware.Prometheus``, which dramatiq 2.x no longer exports, so the
list is given explicitly. ``CONN_MAX_AGE`` defaults to Django's 0 (a new connection per message).
Its tables come from django_dramatiq's migrations, applied by ``manage.py migrate`` with these settings.
"""

import os
import uuid

import dj_database_url

SECRET_KEY = os.environ.get("SECRET_KEY", "bench-only-secret-key")
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_dramatiq", "bench"]
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

NAMESPACE = f"{os.environ.get('BENCH_NAMESPACE', f'bench-{uuid.uuid4().hex[:8]}')}-dd"
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker",
    "OPTIONS": {"url": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"), "namespace": NAMESPACE},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.AdminMiddleware",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}
DRAMATIQ_TASKS_DATABASE = "default"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
