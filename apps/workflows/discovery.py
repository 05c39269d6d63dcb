"""Which workflow and activity modules the Temporal worker loads, found the way task modules are.

Every installed app is searched for the module names in ``TEMPORAL_CONFIG.workflow_modules``
(``workflows`` and ``activities`` by default); the ``@workflow.defn`` classes and ``@activity.defn``
callables those modules define or import are what ``manage.py runtemporal`` registers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from importlib.util import find_spec


def discover_workflow_modules() -> list[str]:
    """Dotted names of the workflow and activity modules of installed apps, in app order."""
    from django.apps import apps

    from apps.workflows.client import temporal_config

    names = []
    for app in apps.get_app_configs():
        for module in temporal_config().workflow_modules:
            name = f"{app.name}.{module}"
            if find_spec(name) is not None:
                names.append(name)
    return names


@dataclass
class Definitions:
    """What a worker registers: workflow classes and activity callables, each name once."""

    workflows: dict[str, type] = field(default_factory=dict)
    activities: dict[str, Callable] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)


def load_definitions() -> Definitions:
    """Import the discovered modules and collect their workflows and activities.

    Two different objects under one name is an error (the worker would refuse them anyway, later
    and less clearly).
    """
    from temporalio import activity, workflow

    found = Definitions(modules=discover_workflow_modules())
    for module_name in found.modules:
        for value in vars(import_module(module_name)).values():
            if isinstance(value, type) and (definition := workflow._Definition.from_class(value)):
                _add(found.workflows, definition.name, value, module_name)
            elif callable(value) and (definition := activity._Definition.from_callable(value)):
                _add(found.activities, definition.name, value, module_name)
    return found


def _add(registry: dict, name: str | None, value, module_name: str) -> None:
    if name is None:  # dynamic workflows/activities have no name: keep them under their qualified name
        name = f"{value.__module__}.{value.__qualname__}"
    existing = registry.get(name)
    if existing is not None and existing is not value:
        raise ValueError(f"{module_name}: {name!r} is defined twice ({existing!r} and {value!r})")
    registry[name] = value


def workflow_names() -> set[str]:
    """Names of the workflows the worker runs (a job of one of these names can only run on Temporal)."""
    return set(load_definitions().workflows)
