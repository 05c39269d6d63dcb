import pytest
from django.core.exceptions import ImproperlyConfigured
from pydantic import ValidationError

from apps.tasks.config import (
    BUILTIN_QUEUES,
    DRAMATIQ_DEFAULT_MIDDLEWARE,
    DramatiqConfig,
    SettingsConflictWarning,
    TaskBackend,
    TaskConfig,
)


def test_defaults():
    config = TaskConfig()
    assert config.enabled is True
    assert config.backend is TaskBackend.DRAMATIQ
    assert config.auto_discover_tasks is True
    assert config.task_modules == ("tasks",)
    dramatiq = config.dramatiq
    assert (dramatiq.redis_db, dramatiq.redis_key_prefix, dramatiq.processes, dramatiq.threads) == (2, "dramatiq", 2, 4)
    assert dramatiq.queues == ("default", "high", "low")  # the reusable app knows no user queue
    assert dramatiq.prometheus_enabled is False


def test_generated_settings_shape():
    config = TaskConfig(
        dramatiq=DramatiqConfig(redis_url="redis://:pw@redis.internal:6380/0", redis_key_prefix="app"),
        redis_caches=True,
    )
    generated = config.to_django_settings()
    assert set(generated) == {
        "TASK_CONFIG",
        "DRAMATIQ_BROKER",
        "DRAMATIQ_AUTODISCOVER_MODULES",
        "DRAMATIQ_TASKS_DATABASE",
        "CACHES",
        "SESSION_ENGINE",
        "SESSION_CACHE_ALIAS",
    }
    assert generated["TASK_CONFIG"] is config
    broker = generated["DRAMATIQ_BROKER"]
    assert broker["BROKER"] == "apps.tasks.broker.RedisBroker"
    assert broker["OPTIONS"] == {
        "url": "redis://:pw@redis.internal:6380/2",
        "namespace": "app",
        "heartbeat_timeout": 60_000,
        "dead_message_ttl": 7 * 86_400_000,
        "maintenance_chance": 1_000,
        "max_connections": 50,
        "socket_connect_timeout": 5.0,
        "socket_timeout": 10.0,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 30,
    }
    assert broker["MIDDLEWARE"] == [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        # Before the lifecycle: a job waiting for a concurrency or rate slot is never recorded running.
        "apps.tasks.middleware.limits.LimitsMiddleware",
        # Before Retries, so its after-hooks run after Retries decided.
        "apps.tasks.middleware.lifecycle.LifecycleMiddleware",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "apps.tasks.middleware.worker_registry.WorkerRegistryMiddleware",
        "apps.tasks.middleware.memory_guard.MemoryGuardMiddleware",
        # Requeues at once what is still running when a stopping worker's shutdown timeout ends.
        "apps.tasks.middleware.graceful_shutdown.GracefulShutdownMiddleware",
        # Interrupts a running job an operator aborted (dramatiq-abort).
        "apps.tasks.middleware.abort.AbortMiddleware",
    ]
    assert generated["DRAMATIQ_AUTODISCOVER_MODULES"] == ["tasks"]
    caches = generated["CACHES"]
    assert caches["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert caches["default"]["LOCATION"] == "redis://:pw@redis.internal:6380/0"
    assert caches["sessions"]["LOCATION"] == "redis://:pw@redis.internal:6380/1"
    assert generated["SESSION_ENGINE"] == "django.contrib.sessions.backends.cache"
    assert generated["SESSION_CACHE_ALIAS"] == "sessions"


def test_broker_db_is_pinned_whatever_the_user_url_names():
    for url in ("redis://h", "redis://h/", "redis://h/0", "redis://h/5", "redis://h?db=9"):
        options = TaskConfig(dramatiq=DramatiqConfig(redis_url=url)).to_django_settings()["DRAMATIQ_BROKER"]["OPTIONS"]
        assert options["url"] == "redis://h/2"


def test_masked_broker_url_hides_the_password():
    config = TaskConfig(dramatiq=DramatiqConfig(redis_url="redis://u:topsecret@h:6379/0"))
    assert config.masked_broker_url == "redis://u:***@h:6379/2"


def test_user_queues_are_added_to_the_builtin_ones():
    assert DramatiqConfig(queues=["emails", "reports"]).queues == (*BUILTIN_QUEUES, "emails", "reports")
    assert DramatiqConfig(queues=["high", "emails"]).queues == (*BUILTIN_QUEUES, "emails")


def test_custom_middleware_keeps_dramatiq_defaults():
    config = DramatiqConfig(middleware=["dramatiq.middleware.CurrentMessage", "dramatiq.middleware.Retries"])
    resolved = config.resolved_middleware()
    for path in DRAMATIQ_DEFAULT_MIDDLEWARE:
        assert resolved.count(path) == 1
    assert resolved[-1] == "dramatiq.middleware.CurrentMessage"
    assert len(resolved) == len(set(resolved))


def test_disabled_config_uses_no_redis_broker():
    generated = TaskConfig(enabled=False).to_django_settings()
    assert generated["DRAMATIQ_BROKER"]["BROKER"] == "dramatiq.brokers.stub.StubBroker"


def test_discovery_off_leaves_no_modules():
    assert TaskConfig(auto_discover_tasks=False).to_django_settings()["DRAMATIQ_AUTODISCOVER_MODULES"] == []
    assert TaskConfig(task_modules=["jobs", "tasks"]).to_django_settings()["DRAMATIQ_AUTODISCOVER_MODULES"] == [
        "jobs",
        "tasks",
    ]


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"queues": ["emails", "emails"]}, "queues", "duplicate queue names: emails"),
        ({"queues": ["default", "default"]}, "queues", "duplicate queue names: default"),
        ({"queues": ["bad name"]}, "queues", "refused by dramatiq"),
        ({"queues": ["9lives"]}, "queues", "refused by dramatiq"),
        ({"queues": [""]}, "queues", "refused by dramatiq"),
        ({"queues": ["emails.DQ"]}, "queues", "reserves"),
        ({"processes": 0}, "processes", "greater than or equal to 1"),
        ({"threads": 0}, "threads", "greater than or equal to 1"),
        ({"threads": -3}, "threads", "greater than or equal to 1"),
        ({"redis_db": 16}, "redis_db", "less than or equal to 15"),
        ({"redis_db": -1}, "redis_db", "greater than or equal to 0"),
        ({"redis_url": "http://localhost:6379/0"}, "redis_url", "unsupported scheme 'http'"),
        ({"redis_url": "postgres://localhost/db"}, "redis_url", "unsupported scheme 'postgres'"),
        ({"redis_url": "redis://localhost:port/0"}, "redis_url", "invalid port"),
        ({"middleware": ["no.such.module.Middleware"]}, "middleware", "does not import"),
        ({"middleware": ["dramatiq.middleware.NoSuchThing"]}, "middleware", "does not import"),
        ({"middleware": ["dramatiq.actor"]}, "middleware", "not a dramatiq Middleware class"),
        ({"redis_key_prefix": "has space"}, "redis_key_prefix", "not a usable key prefix"),
        ({"unknown_option": 1}, "unknown_option", "Extra inputs are not permitted"),
    ],
)
def test_invalid_dramatiq_config_names_field_and_reason(kwargs, field, reason):
    with pytest.raises(ValidationError) as caught:
        DramatiqConfig(**kwargs)
    errors = caught.value.errors()
    assert errors[0]["loc"][0] == field
    assert reason in str(caught.value)


def test_broker_cache_and_session_databases_must_differ():
    with pytest.raises(ValidationError, match="different Redis databases"):
        TaskConfig(cache_redis_db=2)
    with pytest.raises(ValidationError, match="different Redis databases"):
        TaskConfig(dramatiq=DramatiqConfig(redis_db=1))


def test_invalid_nested_config_names_the_nested_field():
    with pytest.raises(ValidationError) as caught:
        TaskConfig(dramatiq={"processes": 0})
    assert caught.value.errors()[0]["loc"] == ("dramatiq", "processes")


def test_prometheus_without_its_extra_is_a_clear_error():
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        with pytest.raises(ValidationError, match="prometheus extra"):
            DramatiqConfig(prometheus_enabled=True)
    else:
        config = DramatiqConfig(prometheus_enabled=True)
        assert "dramatiq.middleware.prometheus.Prometheus" in config.resolved_middleware()


def test_get_task_config_follows_every_way_settings_change(settings):
    from django.conf import settings as django_settings
    from django.test import override_settings

    from apps.tasks.config import get_task_config

    original = get_task_config()  # the value is now cached by LazySettings
    replaced = original.model_copy(update={"record_args_max_bytes": 123})
    settings.TASK_CONFIG = replaced
    assert get_task_config() is replaced
    with override_settings(TASK_CONFIG=original.model_copy(update={"record_args_max_bytes": 7})):
        assert get_task_config().record_args_max_bytes == 7
    assert get_task_config() is replaced
    django_settings.TASK_CONFIG = original
    assert get_task_config() is original
    del settings.TASK_CONFIG
    assert get_task_config() == TaskConfig()


def test_without_redis_caches_the_projects_caches_and_sessions_stay():
    settings = {"CACHES": {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}, "DEBUG": True}
    TaskConfig().merge_into(settings)
    assert settings["CACHES"] == {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert "SESSION_ENGINE" not in settings
    assert settings["DRAMATIQ_BROKER"]["BROKER"] == "apps.tasks.broker.RedisBroker" and settings["DEBUG"] is True


def test_redis_caches_replace_the_two_aliases_keep_the_others_and_name_each_conflict():
    settings = {
        "CACHES": {
            "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "/tmp/c"},
            "reports": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
        },
        "SESSION_ENGINE": "django.contrib.sessions.backends.db",
    }
    with pytest.warns(SettingsConflictWarning) as caught:
        TaskConfig(redis_caches=True).merge_into(settings)
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2
    assert "CACHES['default'] (django.core.cache.backends.filebased.FileBasedCache)" in messages[0]
    assert "SESSION_ENGINE (django.contrib.sessions.backends.db)" in messages[1]
    assert set(settings["CACHES"]) == {"default", "sessions", "reports"}
    assert settings["CACHES"]["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert settings["SESSION_ENGINE"] == "django.contrib.sessions.backends.cache"


def test_a_project_broker_setting_that_differs_is_an_error_naming_it():
    with pytest.raises(ImproperlyConfigured, match="DRAMATIQ_BROKER is set in your settings and by TASK_CONFIG"):
        TaskConfig().merge_into({"DRAMATIQ_BROKER": {"BROKER": "dramatiq.brokers.redis.RedisBroker"}})
    same = TaskConfig().to_django_settings()
    TaskConfig().merge_into(dict(same))  # the same values twice (a settings module imported again) are fine
