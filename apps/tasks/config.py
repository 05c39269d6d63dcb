"""Typed configuration of the task layer, turned into Django settings.

Nothing here imports Django: ``project/settings.py`` builds a ``TaskConfig`` and
merges ``to_django_settings()`` into its namespace. Invalid values fail in the
models' own validation, so a bad configuration stops settings from loading
with a message that names the field.
"""

from __future__ import annotations

import re
import tempfile
from enum import Enum
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from dramatiq.common import q_name
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import UnknownQueueError
from .redis_urls import MAX_DB, RedisURLError, mask_url, validate_redis_url, with_db

#: Queues every deployment has; user queues are added after them.
BUILTIN_QUEUES: tuple[str, ...] = ("default", "high", "low")

#: dramatiq's own defaults. A broker given a middleware list drops them, so we always merge.
DRAMATIQ_DEFAULT_MIDDLEWARE: tuple[str, ...] = (
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.ShutdownNotifications",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Pipelines",
    "dramatiq.middleware.Retries",
)

#: Job records and events. Placed just before Retries: dramatiq runs ``after_*`` hooks in reverse
#: order, so this one sees Retries' decision (retry scheduled, or message failed for good).
LIFECYCLE_MIDDLEWARE = "apps.tasks.middleware.lifecycle.LifecycleMiddleware"
#: Per-actor concurrency and rate limits: before the lifecycle, so a job waiting for a slot is never "running".
LIMITS_MIDDLEWARE = "apps.tasks.middleware.limits.LimitsMiddleware"

#: What this app adds after dramatiq's defaults: Django DB connections closed per message, the
#: registry of live workers (with crash recovery), the memory guard, the requeue at once of
#: messages still running when a stopping worker's shutdown timeout runs out, and aborts.
PROJECT_MIDDLEWARE: tuple[str, ...] = (
    "django_dramatiq.middleware.DbConnectionsMiddleware",
    "apps.tasks.middleware.worker_registry.WorkerRegistryMiddleware",
    "apps.tasks.middleware.memory_guard.MemoryGuardMiddleware",
    "apps.tasks.middleware.graceful_shutdown.GracefulShutdownMiddleware",
    # Last, so its after_process_message runs first: a job that has returned is no longer abortable.
    "apps.tasks.middleware.abort.AbortMiddleware",
)

#: Counts finished jobs and their durations in Redis for the /metrics endpoint (``metrics_enabled``).
METRICS_MIDDLEWARE = "apps.tasks.middleware.metrics.MetricsMiddleware"

PROMETHEUS_MIDDLEWARE = "dramatiq.middleware.prometheus.Prometheus"

BROKER_CLASS = "apps.tasks.broker.RedisBroker"
STUB_BROKER_CLASS = "dramatiq.brokers.stub.StubBroker"

# Same rule as dramatiq.actor (queue names are checked there only when an actor is declared).
_QUEUE_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9._-]*")
_RESERVED_QUEUE_SUFFIXES = (".DQ", ".XQ")
_KEY_PREFIX_RE = re.compile(r"[A-Za-z0-9_.:-]+")


_MODULE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def check_name(value: str, what: str) -> str:
    """A name that goes into Redis keys or Temporal (letters, digits and ``_ . : -``; apps.workflows
    checks its own with it), or ValueError naming ``what`` it is not."""
    if not _KEY_PREFIX_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a usable {what}: use letters, digits and _ . : - (no spaces)")
    return value


def check_module_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Dotted module names (``task_modules``; apps.workflows checks its own with it), the bad one named."""
    for name in names:
        if not _MODULE_NAME_RE.fullmatch(name):
            raise ValueError(f"{name!r} is not a module name")
    return names


class TaskBackend(str, Enum):
    DRAMATIQ = "dramatiq"


def _import_path(path: str) -> Any:
    module_path, _, name = path.rpartition(".")
    if not module_path:
        raise ValueError(f"{path!r} is not a dotted import path")
    try:
        module = import_module(module_path)
    except ImportError as exc:
        raise ValueError(f"{path!r} does not import: {exc}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"{path!r} does not import: module {module_path!r} has no {name!r}") from None


class DramatiqConfig(BaseModel):
    """The broker, its Redis connection and the worker pool.

    Times ending in ``_ms`` are milliseconds, as dramatiq counts them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_db: int = Field(default=2, ge=0, le=MAX_DB)
    redis_key_prefix: str = "dramatiq"
    processes: int = Field(default=2, ge=1)
    threads: int = Field(default=4, ge=1)
    queues: tuple[str, ...] = BUILTIN_QUEUES
    #: Extra middleware (dotted paths), added after dramatiq's defaults and ours.
    middleware: tuple[str, ...] = ()
    prometheus_enabled: bool = False

    # Redis connection options for the broker's pool.
    max_connections: int = Field(default=50, ge=1)
    socket_connect_timeout: float = Field(default=5.0, gt=0)
    socket_timeout: float = Field(default=10.0, gt=0)
    socket_keepalive: bool = True
    retry_on_timeout: bool = True
    health_check_interval: int = Field(default=30, ge=0)

    # Defaults of the @task decorator; each actor can override them.
    default_queue: str = "default"
    max_retries: int = Field(default=5, ge=0)
    min_backoff_ms: int = Field(default=1_000, ge=1)
    max_backoff_ms: int = Field(default=300_000, ge=1)
    time_limit_ms: int = Field(default=600_000, ge=1)

    # Broker behaviour.
    heartbeat_timeout_ms: int = Field(default=60_000, ge=1_000)
    #: dramatiq's own random maintenance: calls in a million that trigger it (recovery does not rely on it).
    maintenance_chance: int = Field(default=1_000, ge=0, le=1_000_000)
    dead_message_ttl_ms: int = Field(default=7 * 86_400_000, ge=1_000)
    worker_shutdown_timeout_ms: int = Field(default=60_000, ge=1_000)
    #: How often a worker process refreshes its registry entry and looks for dead workers to recover
    #: (at most a third of heartbeat_timeout_ms).
    worker_heartbeat_interval_ms: int = Field(default=5_000, ge=100)
    #: A message whose worker process died under it this many times goes to the dead letter queue.
    max_worker_deaths: int = Field(default=3, ge=1)
    #: A pending or retrying record unchanged this long whose message is nowhere in Redis is lost:
    #: the reconciler sends it again from the record (services.reconcile). 0 turns that off.
    reconcile_grace_ms: int = Field(default=60_000, ge=0)
    #: Records the reconciler checks per pass (one pass per heartbeat interval, in one worker).
    reconcile_batch: int = Field(default=500, ge=1)
    #: Where worker processes note what they are running (must survive a worker restart on the host).
    state_dir: str = ""
    #: A worker process past either limit finishes its work and is replaced (None: no limit).
    max_tasks_per_worker: int | None = Field(default=None, ge=1)
    max_worker_memory_mb: int | None = Field(default=None, ge=16)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        try:
            return validate_redis_url(value)
        except RedisURLError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("redis_key_prefix")
    @classmethod
    def _check_key_prefix(cls, value: str) -> str:
        return check_name(value, "key prefix")

    @field_validator("queues")
    @classmethod
    def _check_queues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        duplicates = sorted({name for name in value if name in seen or seen.add(name)})
        if duplicates:
            raise ValueError(f"duplicate queue names: {', '.join(duplicates)}")
        for name in value:
            if not _QUEUE_NAME_RE.fullmatch(name):
                raise ValueError(
                    f"queue name {name!r} is refused by dramatiq: it must start with a letter or an "
                    "underscore followed by letters, digits, dots, dashes or underscores"
                )
            if name.endswith(_RESERVED_QUEUE_SUFFIXES):
                raise ValueError(f"queue name {name!r} ends with a suffix dramatiq reserves (.DQ, .XQ)")
        return BUILTIN_QUEUES + tuple(name for name in value if name not in BUILTIN_QUEUES)

    @field_validator("middleware")
    @classmethod
    def _check_middleware(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from dramatiq import Middleware

        for path in value:
            obj = _import_path(path)
            if not (isinstance(obj, type) and issubclass(obj, Middleware)):
                raise ValueError(f"{path!r} is not a dramatiq Middleware class")
        return value

    @model_validator(mode="after")
    def _check_defaults(self) -> DramatiqConfig:
        if self.default_queue not in self.queues:
            raise ValueError(f"default_queue {self.default_queue!r} is not one of the queues: {', '.join(self.queues)}")
        if self.min_backoff_ms > self.max_backoff_ms:
            raise ValueError("min_backoff_ms must not exceed max_backoff_ms")
        return self

    @model_validator(mode="after")
    def _check_prometheus(self) -> DramatiqConfig:
        # dramatiq's Prometheus middleware imports prometheus_client only when a worker boots.
        if self.prometheus_enabled and find_spec("prometheus_client") is None:
            raise ValueError("prometheus_enabled needs the prometheus extra: pip install 'dramatiq[prometheus]'")
        return self

    @property
    def state_path(self) -> Path:
        """``state_dir`` (default: the temp dir), one folder per namespace so deployments never mix."""
        base = Path(self.state_dir) if self.state_dir else Path(tempfile.gettempdir()) / "apps-tasks"
        return base / self.redis_key_prefix

    @property
    def heartbeat_interval_ms(self) -> int:
        return min(self.worker_heartbeat_interval_ms, self.heartbeat_timeout_ms // 3)

    @property
    def broker_url(self) -> str:
        """The user's URL, selecting ``redis_db`` whatever database it named."""
        return with_db(self.redis_url, self.redis_db)

    def resolved_middleware(self) -> list[str]:
        """dramatiq's defaults (with our lifecycle recorder before Retries), then ours, then
        Prometheus if on, then the user's; each once."""
        ordered = list(DRAMATIQ_DEFAULT_MIDDLEWARE)
        ordered.insert(ordered.index("dramatiq.middleware.Retries"), LIFECYCLE_MIDDLEWARE)
        ordered.insert(ordered.index(LIFECYCLE_MIDDLEWARE), LIMITS_MIDDLEWARE)
        ordered.extend(PROJECT_MIDDLEWARE)
        if self.prometheus_enabled:
            ordered.append(PROMETHEUS_MIDDLEWARE)
        ordered.extend(self.middleware)
        return list(dict.fromkeys(ordered))

    def broker_options(self) -> dict[str, Any]:
        return {
            "url": self.broker_url,
            "namespace": self.redis_key_prefix,
            "heartbeat_timeout": self.heartbeat_timeout_ms,
            "dead_message_ttl": self.dead_message_ttl_ms,
            "maintenance_chance": self.maintenance_chance,
            "max_connections": self.max_connections,
            "socket_connect_timeout": self.socket_connect_timeout,
            "socket_timeout": self.socket_timeout,
            "socket_keepalive": self.socket_keepalive,
            "retry_on_timeout": self.retry_on_timeout,
            "health_check_interval": self.health_check_interval,
        }


_SCHEDULE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ACTOR_REF_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def check_cron(expression: str) -> str:
    """A five-field crontab expression (minute hour day month day-of-week), normalised to single
    spaces; ValueError says what is wrong. Parsed by APScheduler, the engine of dramatiq-crontab."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} is not a cron expression: it needs 5 fields (minute hour day month day-of-week), "
            f"not {len(fields)}"
        )
    if any(character.isdigit() for character in fields[4]):
        # crontab counts 0 = Sunday, APScheduler 0 = Monday: dramatiq-crontab refuses numbers, so do we.
        raise ValueError(f"{expression!r}: write the day of week as mon, tue, ... sun (or *), not as a number")
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"{expression!r} is not a valid cron expression: {exc}") from None
    return " ".join(fields)


class ScheduleEntry(BaseModel):
    """A periodic job: the workers (and ``manage.py runscheduler`` where it runs) send ``actor`` (an
    actor name, or the dotted path of an actor) with ``args``/``kwargs`` on every ``cron`` tick, once
    per tick whatever the number of senders (see ``apps.tasks.services.schedules``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    cron: str
    actor: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _SCHEDULE_NAME_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a schedule name: use letters, digits and _ . - (no spaces)")
        return value

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("actor")
    @classmethod
    def _check_actor(cls, value: str) -> str:
        if not _ACTOR_REF_RE.fullmatch(value):
            raise ValueError(f"{value!r} is neither an actor name nor a dotted path to an actor")
        return value


def default_schedules() -> tuple[ScheduleEntry, ...]:
    """The task layer's own periodic job: the retention purge of job records, daily at 03:17."""
    purge = ScheduleEntry(name="purge-job-records", cron="17 3 * * *", actor="apps.tasks.tasks.purge_job_records_task")
    return (purge,)


class LogFormat(str, Enum):
    PLAIN = "plain"
    JSON = "json"


class TaskConfig(BaseModel):
    """Everything the task layer needs; ``to_django_settings()`` produces the Django settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    backend: TaskBackend = TaskBackend.DRAMATIQ
    dramatiq: DramatiqConfig = Field(default_factory=DramatiqConfig)
    #: Durable workflows beside dramatiq (``apps.workflows``); off unless enabled.
    auto_discover_tasks: bool = True
    task_modules: tuple[str, ...] = ("tasks",)
    #: Opt in to the cache on Redis DB ``cache_redis_db`` and sessions on DB ``session_redis_db``
    #: (django-redis, aliases ``default`` and ``sessions``). Off: the project's CACHES and sessions stay.
    redis_caches: bool = False
    cache_redis_db: int = Field(default=0, ge=0, le=MAX_DB)
    session_redis_db: int = Field(default=1, ge=0, le=MAX_DB)
    cache_key_prefix: str = ""

    # Job records and lifecycle events.
    record_flush_interval_ms: int = Field(default=100, ge=1, le=10_000)
    record_args_max_bytes: int = Field(default=8_192, ge=256)
    secret_arg_keys: tuple[str, ...] = ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization")
    record_retention_days: int = Field(default=7, ge=1)
    events_max_length: int = Field(default=10_000, ge=100)
    dead_letter_notifier: str = "apps.tasks.notifications.mail_admins_notifier"
    admin_base_url: str = ""
    #: Health is degraded (HTTP 503, exit 1) while a configured queue has no live consumer.
    health_requires_consumers: bool = True

    #: Periodic jobs (see ScheduleEntry).
    schedules: tuple[ScheduleEntry, ...] = Field(default_factory=default_schedules)
    #: Every worker process sends the due schedules on its heartbeat, so running workers is enough.
    #: Off: only ``manage.py runscheduler`` sends them (``rundramatiq`` warns that it must run).
    schedules_in_workers: bool = True
    #: Log lines of every process: ``plain``, or ``json`` (one object per line); see apps.tasks.logging.
    log_format: LogFormat = LogFormat.PLAIN
    #: Prometheus metrics (apps.tasks.metrics): workers count jobs in Redis, /metrics serves them. Off by default.
    metrics_enabled: bool = False
    #: When set, /metrics wants ``Authorization: Bearer <token>``.
    metrics_token: str = Field(default="", repr=False)
    #: When set, scripts may call the JSON API with ``Authorization: Bearer <token>`` (view and act,
    #: as staff with the job-record permissions; recorded as "api token"). Empty: sessions only.
    api_token: str = Field(default="", repr=False)

    @field_validator("metrics_enabled")
    @classmethod
    def _check_metrics(cls, value: bool) -> bool:
        if value and find_spec("prometheus_client") is None:
            raise ValueError("metrics_enabled needs the metrics extra: pip install 'django-dramatiq-tasks[metrics]'")
        return value

    @field_validator("dead_letter_notifier")
    @classmethod
    def _check_notifier(cls, value: str) -> str:
        if value and not callable(_import_path(value)):
            raise ValueError(f"{value!r} is not callable")
        return value

    @field_validator("task_modules")
    @classmethod
    def _check_task_modules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_module_names(value)

    @field_validator("schedules")
    @classmethod
    def _check_schedule_names(cls, value: tuple[ScheduleEntry, ...]) -> tuple[ScheduleEntry, ...]:
        names = [entry.name for entry in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate schedule names: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _check_db_isolation(self) -> TaskConfig:
        dbs = {
            "dramatiq.redis_db": self.dramatiq.redis_db,
            "cache_redis_db": self.cache_redis_db,
            "session_redis_db": self.session_redis_db,
        }
        if len(set(dbs.values())) != len(dbs):
            shown = ", ".join(f"{name}={db}" for name, db in dbs.items())
            raise ValueError(f"the broker, cache and sessions must use different Redis databases ({shown})")
        return self

    @property
    def masked_broker_url(self) -> str:
        return mask_url(self.dramatiq.broker_url)

    def _cache(self, db: int) -> dict[str, Any]:
        dramatiq = self.dramatiq
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": with_db(dramatiq.redis_url, db),
            "KEY_PREFIX": self.cache_key_prefix,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": dramatiq.socket_connect_timeout,
                "SOCKET_TIMEOUT": dramatiq.socket_timeout,
                "CONNECTION_POOL_KWARGS": {
                    "max_connections": dramatiq.max_connections,
                    "retry_on_timeout": dramatiq.retry_on_timeout,
                    "socket_keepalive": dramatiq.socket_keepalive,
                    "health_check_interval": dramatiq.health_check_interval,
                },
            },
        }

    def to_django_settings(self) -> dict[str, Any]:
        """The settings this configuration makes: broker and discovery, and with ``redis_caches``
        the caches and sessions. ``merge_into`` adds them to a settings module without replacing
        the project's own."""
        if self.enabled:
            broker = {
                "BROKER": BROKER_CLASS,
                "OPTIONS": self.dramatiq.broker_options(),
                "MIDDLEWARE": self.dramatiq.resolved_middleware()
                + ([METRICS_MIDDLEWARE] if self.metrics_enabled else []),
            }
        else:
            # Disabled: nothing may talk to Redis on the broker's behalf.
            broker = {"BROKER": STUB_BROKER_CLASS, "OPTIONS": {}, "MIDDLEWARE": list(DRAMATIQ_DEFAULT_MIDDLEWARE)}
        generated: dict[str, Any] = {
            "TASK_CONFIG": self,
            "DRAMATIQ_BROKER": broker,
            "DRAMATIQ_AUTODISCOVER_MODULES": list(self.task_modules) if self.auto_discover_tasks else [],
            "DRAMATIQ_TASKS_DATABASE": "default",
        }
        if self.redis_caches:
            generated.update(
                CACHES={"default": self._cache(self.cache_redis_db), "sessions": self._cache(self.session_redis_db)},
                SESSION_ENGINE="django.contrib.sessions.backends.cache",
                SESSION_CACHE_ALIAS="sessions",
            )
        return generated

    def merge_into(self, settings: dict[str, Any]) -> None:
        """Add this configuration's settings to a settings module (``TASK_CONFIG.merge_into(globals())``).

        The broker settings are the app's: a project that sets ``DRAMATIQ_BROKER`` (or the other
        ``DRAMATIQ_*`` settings) differently gets ImproperlyConfigured naming it. Caches and sessions
        change only with ``redis_caches``: then the ``default`` and ``sessions`` aliases are the
        app's, other aliases stay, and a project value replaced is named in a SettingsConflictWarning.
        ``CSRF_FAILURE_VIEW`` and ``DEFAULT_EXCEPTION_REPORTER(_FILTER)`` are set unless the project set them.
        """
        from django.core.exceptions import ImproperlyConfigured

        generated = self.to_django_settings()
        for name in ("DRAMATIQ_BROKER", "DRAMATIQ_AUTODISCOVER_MODULES", "DRAMATIQ_TASKS_DATABASE"):
            if name in settings and settings[name] != generated[name]:
                raise ImproperlyConfigured(
                    f"{name} is set in your settings and by TASK_CONFIG: remove yours (TASK_CONFIG.dramatiq "
                    f"and task_modules configure the broker and discovery)."
                )
        if self.redis_caches:
            caches = dict(settings.get("CACHES") or {})
            for alias, value in generated["CACHES"].items():
                if alias in caches and caches[alias] != value and caches[alias] != _DJANGO_DEFAULT_CACHE:
                    _warn_conflict(f"CACHES[{alias!r}] ({caches[alias].get('BACKEND', '?')})", value["BACKEND"])
                caches[alias] = value
            generated["CACHES"] = caches
            for name in ("SESSION_ENGINE", "SESSION_CACHE_ALIAS"):
                if name in settings and settings[name] != generated[name]:
                    _warn_conflict(f"{name} ({settings[name]})", generated[name])
        settings.update(generated)
        # Unless the project has its own: JSON CSRF errors for the API, masked DEBUG pages and error mails.
        settings.setdefault("CSRF_FAILURE_VIEW", "apps.tasks.api.csrf_failure")
        settings.setdefault("DEFAULT_EXCEPTION_REPORTER_FILTER", "apps.tasks.debug.TaskExceptionReporterFilter")
        settings.setdefault("DEFAULT_EXCEPTION_REPORTER", "apps.tasks.debug.TaskExceptionReporter")


class SettingsConflictWarning(UserWarning):
    """TASK_CONFIG.merge_into replaced a value the project had set (with ``redis_caches``)."""


#: What Django uses when a project sets no CACHES: replacing it is no conflict.
_DJANGO_DEFAULT_CACHE = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def _warn_conflict(what: str, replacement: str) -> None:
    import warnings

    warnings.warn(
        f"TASK_CONFIG.redis_caches replaces your {what} with {replacement}; set redis_caches=False to keep yours.",
        SettingsConflictWarning,
        stacklevel=3,
    )


def get_task_config() -> TaskConfig:
    """The project's ``TASK_CONFIG`` setting, or the defaults when it has none."""
    from django.conf import settings

    # LazySettings caches each setting in its own __dict__ (cleared by overrides). Reading it there
    # skips LazyObject's per-access probe of the value for ``_mask_wrapped``, which on a pydantic
    # model is a failed attribute lookup costing more than the rest of a hot-path call.
    config = settings.__dict__.get("TASK_CONFIG")
    if config is None:
        config = getattr(settings, "TASK_CONFIG", None)
    return config if isinstance(config, TaskConfig) else TaskConfig()


def configured_queues() -> tuple[str, ...]:
    """The queues of this deployment: the built-in ones, then the project's."""
    return get_task_config().dramatiq.queues


def check_queue(queue_name: str) -> str:
    """The canonical queue name, or UnknownQueueError listing the configured ones."""
    canonical = q_name(queue_name)
    queues = configured_queues()
    if canonical not in queues:
        raise UnknownQueueError(f"unknown queue {queue_name!r}; configured queues: {', '.join(queues)}")
    return canonical
