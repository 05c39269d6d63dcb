from apps.tasks.discovery import discover_task_modules, import_task_modules


def test_tasks_modules_of_installed_apps_are_discovered():
    modules = discover_task_modules()
    assert "apps.tasks.tasks" in modules
    assert "tests.testapp.tasks" in modules
    assert "django_dramatiq.setup" not in modules


def test_discovery_follows_the_configured_module_names(settings):
    settings.DRAMATIQ_AUTODISCOVER_MODULES = []
    modules = discover_task_modules()
    assert "apps.tasks.tasks" not in modules
    assert "tests.testapp.tasks" not in modules


def test_importing_discovered_modules_declares_their_actors():
    import dramatiq

    import_task_modules()
    names = set(dramatiq.get_broker().get_declared_actors())
    assert {"ping", "record_effect"} <= names
