"""Which task modules the worker imports, found the way django-dramatiq's rundramatiq finds them."""

from __future__ import annotations

import io
from importlib import import_module

from django_dramatiq.management.commands.rundramatiq import Command as RundramatiqCommand

# django_dramatiq.setup only calls django.setup() in the worker; it declares no actors.
_BOOTSTRAP_MODULES = frozenset({"django_dramatiq.setup"})


def discover_task_modules() -> list[str]:
    """Dotted names of the task modules of installed apps (``DRAMATIQ_AUTODISCOVER_MODULES``)."""
    command = RundramatiqCommand(stdout=io.StringIO(), stderr=io.StringIO())
    return [name for name in command.discover_tasks_modules() if name not in _BOOTSTRAP_MODULES]


def import_task_modules() -> list[str]:
    """Import every discovered task module so its actors are declared in this process."""
    modules = discover_task_modules()
    for name in modules:
        import_module(name)
    return modules
