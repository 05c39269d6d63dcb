"""Settings load from the environment; `manage.py check` passes with DEBUG on and off."""

import pytest

from tests.helpers import manage_env, run_manage


def project_env(**overrides: str) -> dict[str, str]:
    env = manage_env(DJANGO_SETTINGS_MODULE="project.settings", **overrides)
    for name in ("DEBUG", "SECRET_KEY", "TASKS_EXTRA_QUEUES", "DRAMATIQ_PROCESSES"):
        if name not in overrides:
            env.pop(name, None)
    return env


@pytest.mark.parametrize("debug", ["1", "0"])
def test_manage_check_passes(debug):
    result = run_manage("check", env=project_env(DEBUG=debug, SECRET_KEY="k" * 50, ALLOWED_HOSTS="example.com"))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_missing_secret_key_outside_debug_is_an_error():
    result = run_manage("check", env=project_env(DEBUG="0"))
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_missing_secret_key_with_debug_uses_a_local_key():
    result = run_manage("check", env=project_env(DEBUG="1"))
    assert result.returncode == 0, result.stderr


def test_invalid_task_config_from_the_environment_stops_settings_loading():
    result = run_manage("check", env=project_env(DEBUG="1", TASKS_EXTRA_QUEUES="emails,emails"))
    assert result.returncode != 0
    assert "dramatiq.queues" in result.stderr or "queues" in result.stderr
    assert "duplicate queue names: emails" in result.stderr


def test_invalid_integer_in_the_environment_names_the_variable():
    result = run_manage("check", env=project_env(DEBUG="1", DRAMATIQ_PROCESSES="two"))
    assert result.returncode != 0
    assert "DRAMATIQ_PROCESSES='two' is not an integer" in result.stderr


def test_settings_use_the_typed_config(settings):
    broker = settings.DRAMATIQ_BROKER
    assert broker["OPTIONS"]["url"].endswith("/2")
    assert broker["OPTIONS"]["namespace"] == settings.TASK_CONFIG.dramatiq.redis_key_prefix
    assert settings.CACHES["default"]["LOCATION"].endswith("/0")
    assert settings.CACHES["sessions"]["LOCATION"].endswith("/1")
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cache"


def test_test_runs_use_their_own_namespace(settings):
    assert settings.TASK_CONFIG.dramatiq.redis_key_prefix.startswith("test-")
    import dramatiq

    assert dramatiq.get_broker().namespace == settings.TASK_CONFIG.dramatiq.redis_key_prefix


def test_cache_and_sessions_live_in_redis(broker_redis):
    from django.core.cache import caches

    caches["default"].set("probe", "cached", 30)
    assert caches["default"].get("probe") == "cached"
    assert caches["default"].client.get_client().connection_pool.connection_kwargs["db"] == 0
    assert caches["sessions"].client.get_client().connection_pool.connection_kwargs["db"] == 1
    caches["default"].delete("probe")


def test_broker_pool_applies_connection_options():
    import dramatiq

    kwargs = dramatiq.get_broker().client.connection_pool.connection_kwargs
    assert kwargs["db"] == 2
    assert kwargs["socket_timeout"] == 10.0
    assert kwargs["socket_connect_timeout"] == 5.0
    assert kwargs["socket_keepalive"] is True
    assert dramatiq.get_broker().client.connection_pool.max_connections == 50
