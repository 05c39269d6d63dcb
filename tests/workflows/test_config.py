"""TemporalConfig: off by default, validated, read from the environment; discovery of workflow modules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from apps.tasks.config import TaskConfig
from apps.workflows.config import TemporalConfig, get_temporal_config
from tests.helpers import ROOT, manage_env


def test_off_by_default_and_the_task_layer_knows_nothing_of_it(settings):
    del settings.TEMPORAL_CONFIG
    config = get_temporal_config()
    assert config == TemporalConfig()
    assert config.enabled is False
    assert (config.address, config.namespace, config.task_queue) == ("127.0.0.1:7233", "default", "workflows")
    assert "temporal" not in TaskConfig.model_fields  # Temporal is configured by apps.workflows alone
    assert "TEMPORAL" not in " ".join(TaskConfig().to_django_settings())


def test_a_dict_setting_is_validated(settings):
    settings.TEMPORAL_CONFIG = {"enabled": False, "task_queue": "long"}
    assert get_temporal_config().task_queue == "long"
    settings.TEMPORAL_CONFIG = {"task_queue": "has space"}
    with pytest.raises(ValidationError, match="task_queue"):
        get_temporal_config()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"address": "no-port"}, "address"),
        ({"address": "host:port"}, "address"),
        ({"task_queue": "has space"}, "task_queue"),
        ({"namespace": ""}, "namespace"),
        ({"workers": 0}, "workers"),
        ({"activity_threads": 0}, "activity_threads"),
        ({"workflow_modules": ["bad name"]}, "workflow_modules"),
    ],
)
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ValidationError) as error:
        TemporalConfig(**changes)
    assert field in str(error.value)


def test_addresses_with_names_and_ipv6():
    for address in ("temporal.internal:7233", "127.0.0.1:7233", "[::1]:7233"):
        assert TemporalConfig(address=address).address == address


def test_settings_read_the_environment():
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "t = settings.TEMPORAL_CONFIG; "
        "print(json.dumps([t.enabled, t.address, t.namespace, t.task_queue, t.workers, t.activity_threads, "
        "t.shutdown_timeout, t.sticky_queue_timeout, t.server_db_path]))"
    )
    env = manage_env(
        TEMPORAL_ENABLED="1", TEMPORAL_ADDRESS="temporal.internal:7233", TEMPORAL_NAMESPACE="kb",
        TEMPORAL_TASK_QUEUE="long-jobs", TEMPORAL_WORKERS="3", TEMPORAL_ACTIVITY_THREADS="5",
        TEMPORAL_SHUTDOWN_TIMEOUT_MS="1500", TEMPORAL_STICKY_QUEUE_TIMEOUT_MS="2500",
    )  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values[:8] == [True, "temporal.internal:7233", "kb", "long-jobs", 3, 5, 1.5, 2.5]
    assert values[8].endswith("var/temporal/dev-server.sqlite3")


def test_discovery_finds_the_apps_workflow_modules(settings):
    from apps.workflows.discovery import discover_workflow_modules, load_definitions

    settings.TEMPORAL_CONFIG = settings.TEMPORAL_CONFIG.model_copy(update={"enabled": True})

    assert discover_workflow_modules() == [
        "apps.knowbase.workflows", "apps.knowbase.activities", "apps.workflows.workflows", "apps.workflows.activities",
    ]  # fmt: skip
    definitions = load_definitions()
    assert set(definitions.workflows) == {"ReindexKnowledgeWorkflow", "RunActorWorkflow"}
    assert {"record_workflow_event", "reindex_batch", "reindex_restore_backups", "run_actor"} <= set(
        definitions.activities
    )


def test_workflow_modules_import_no_django_at_module_level():
    """The sandbox re-imports workflow modules: importing them must not pull Django in."""
    code = (
        "import sys; import apps.knowbase.reindex.workflow, apps.workflows.run_actor, apps.workflows.lifecycle; "
        "print(sorted(name for name in sys.modules if name == 'django' or name.startswith('django.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_settings_load_without_the_workflows_extra():
    """A project's settings import TemporalConfig; temporalio is the optional ``workflows`` extra."""
    code = "import sys; sys.modules['temporalio'] = None; import apps.workflows.config; print('loaded')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "loaded", done.stderr
