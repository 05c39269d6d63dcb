"""Django settings. Every deployment value comes from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

from apps.tasks.config import DramatiqConfig, TaskConfig
from apps.tasks.logging import logging_config
from apps.workflows.config import TemporalConfig

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set SECRET_KEY, or DEBUG=1 locally).")
    SECRET_KEY = "insecure-local-development-key-only-used-with-DEBUG"  # noqa: S105

ALLOWED_HOSTS = list(env_list("ALLOWED_HOSTS", ("localhost", "127.0.0.1", "[::1]") if DEBUG else ()))
CSRF_TRUSTED_ORIGINS = list(env_list("CSRF_TRUSTED_ORIGINS"))

# HTTPS, what `manage.py check --deploy` asks for: off here (local runs and tests speak HTTP), on in
# the production environment file (.env.example). Probes of health and metrics on plain HTTP are not
# redirected. Behind a proxy that ends TLS, SECURE_PROXY_SSL_HEADER_HTTPS=1 trusts X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
if env_bool("SECURE_PROXY_SSL_HEADER_HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # apps.tasks comes before django_dramatiq so its rundramatiq command wins.
    "apps.tasks",
    "django_dramatiq",
    "apps.knowbase",
    # Durable workflows on Temporal beside dramatiq; inert unless TEMPORAL_ENABLED=1.
    "apps.workflows",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")  # the backport of django.tasks (built in from Django 6.0)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite under var/ for a first run; PostgreSQL (DATABASE_URL=postgresql://...) in production.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares a statement run this many times on a server-side-binding cursor (the job
    # record insert of every enqueue uses one; Django's own queries bind client-side and never
    # prepare). "none" turns it off, as a PgBouncer in transaction mode before 1.21 needs.
    _prepare = env_str("DATABASE_PREPARE_THRESHOLD", "5").strip().lower()
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None if _prepare == "none" else int(_prepare)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker threads and the web process share the file: wait for locks, take the write lock up front.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# The task layer: broker on Redis DB 2, cache on DB 0, sessions on DB 1.
TASK_CONFIG = TaskConfig(
    # Cache on Redis DB 0 and sessions on DB 1 (django-redis), beside the broker on DB 2.
    redis_caches=True,
    enabled=env_bool("TASKS_ENABLED", True),
    dramatiq=DramatiqConfig(
        redis_url=env_str("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_key_prefix=env_str("TASKS_REDIS_KEY_PREFIX", "dramatiq"),
        processes=env_int("DRAMATIQ_PROCESSES", 2),
        threads=env_int("DRAMATIQ_THREADS", 4),
        # The knowledge base processes documents on its own queue.
        queues=["knowledge", *env_list("TASKS_EXTRA_QUEUES")],
        middleware=env_list("TASKS_EXTRA_MIDDLEWARE"),
        prometheus_enabled=env_bool("TASKS_PROMETHEUS", False),
        heartbeat_timeout_ms=env_int("TASKS_HEARTBEAT_TIMEOUT_MS", 60_000),
        maintenance_chance=env_int("TASKS_MAINTENANCE_CHANCE", 1_000),
        worker_shutdown_timeout_ms=env_int("TASKS_WORKER_SHUTDOWN_TIMEOUT_MS", 60_000),
        worker_heartbeat_interval_ms=env_int("TASKS_WORKER_HEARTBEAT_INTERVAL_MS", 5_000),
        max_worker_deaths=env_int("TASKS_MAX_WORKER_DEATHS", 3),
        reconcile_grace_ms=env_int("TASKS_RECONCILE_GRACE_MS", 60_000),
        state_dir=env_str("TASKS_STATE_DIR", str(VAR_DIR / "run")),
        max_tasks_per_worker=env_int("TASKS_MAX_TASKS_PER_WORKER", 0) or None,
        max_worker_memory_mb=env_int("TASKS_MAX_WORKER_MEMORY_MB", 0) or None,
    ),
    cache_key_prefix=env_str("CACHE_KEY_PREFIX", ""),
    record_retention_days=env_int("TASKS_RECORD_RETENTION_DAYS", 7),
    dead_letter_notifier=env_str("TASKS_DEAD_LETTER_NOTIFIER", "apps.tasks.notifications.mail_admins_notifier"),
    admin_base_url=env_str("TASKS_ADMIN_BASE_URL", ""),
    health_requires_consumers=env_bool("TASKS_HEALTH_REQUIRES_CONSUMERS", True),
    # Periodic jobs, sent by the workers' heartbeats (and `manage.py runscheduler` if run); "off" drops one.
    schedules=[
        {"name": name, "cron": cron, "actor": actor}
        for name, cron, actor in (
            (
                "purge-job-records",
                env_str("TASKS_PURGE_SCHEDULE", "17 3 * * *"),
                "apps.tasks.tasks.purge_job_records_task",
            ),
            ("knowbase-sweep", env_str("KNOWBASE_SWEEP_SCHEDULE", "*/5 * * * *"), "apps.knowbase.tasks.knowbase_sweep"),
        )
        if cron.strip().lower() != "off"
    ],
    schedules_in_workers=env_bool("TASKS_SCHEDULES_IN_WORKERS", True),
    log_format=env_str("TASKS_LOG_FORMAT", "plain"),
    metrics_enabled=env_bool("TASKS_METRICS", False),
    metrics_token=env_str("TASKS_METRICS_TOKEN", ""),
    api_token=env_str("TASKS_API_TOKEN", ""),
)
TASK_CONFIG.merge_into(globals())

# Durable workflows (apps.workflows): off unless TEMPORAL_ENABLED=1.
TEMPORAL_CONFIG = TemporalConfig(
    enabled=env_bool("TEMPORAL_ENABLED", False),
    address=env_str("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
    namespace=env_str("TEMPORAL_NAMESPACE", "default"),
    task_queue=env_str("TEMPORAL_TASK_QUEUE", "workflows"),
    workers=env_int("TEMPORAL_WORKERS", 1),
    activity_threads=env_int("TEMPORAL_ACTIVITY_THREADS", 8),
    server_db_path=env_str("TEMPORAL_SERVER_DB", str(VAR_DIR / "temporal" / "dev-server.sqlite3")),
    shutdown_timeout=env_int("TEMPORAL_SHUTDOWN_TIMEOUT_MS", 30_000) / 1000,
    sticky_queue_timeout=env_int("TEMPORAL_STICKY_QUEUE_TIMEOUT_MS", 10_000) / 1000,
    heartbeat_timeout=env_int("TEMPORAL_HEARTBEAT_TIMEOUT_MS", 5_000) / 1000,
)

# Django's Tasks framework (django.tasks / the django-tasks backport) runs on our Dramatiq workers.
TASKS = {"default": {"BACKEND": "apps.tasks.backends.DramatiqBackend"}}

# Knowledge base (apps.knowbase): chunking, embeddings, limits, the outbox sweeper.
KNOWBASE_EMBEDDER = env_str("KNOWBASE_EMBEDDER", "apps.knowbase.services.embeddings.HashingEmbedder")
KNOWBASE_CHUNK_SIZE = env_int("KNOWBASE_CHUNK_SIZE", 800)
KNOWBASE_CHUNK_OVERLAP = env_int("KNOWBASE_CHUNK_OVERLAP", 100)
KNOWBASE_EMBEDDING_BATCH_SIZE = env_int("KNOWBASE_EMBEDDING_BATCH_SIZE", 64)
KNOWBASE_SENTENCE_TRANSFORMER_MODEL = env_str("KNOWBASE_SENTENCE_TRANSFORMER_MODEL", "")
KNOWBASE_EMBEDDING_DEVICE = env_str("KNOWBASE_EMBEDDING_DEVICE", "cpu")
KNOWBASE_MAX_DOCUMENT_BYTES = env_int("KNOWBASE_MAX_DOCUMENT_BYTES", 5 * 1024 * 1024)
KNOWBASE_SWEEP_AGE_SECONDS = env_int("KNOWBASE_SWEEP_AGE_SECONDS", 300)
# Keep the lease above the processing actor's time limit.
KNOWBASE_PROCESSING_LEASE_SECONDS = env_int("KNOWBASE_PROCESSING_LEASE_SECONDS", 900)
KNOWBASE_MAX_ATTEMPTS = env_int("KNOWBASE_MAX_ATTEMPTS", 3)
KNOWBASE_MEDIA_ROOT = env_str("KNOWBASE_MEDIA_ROOT", str(VAR_DIR / "media"))

# One format for web, workers and scheduler: plain, or JSON lines (TASKS_LOG_FORMAT=json); job fields on task lines.
LOGGING = logging_config(TASK_CONFIG.log_format.value, env_str("LOG_LEVEL", "INFO"))
