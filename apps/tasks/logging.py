"""One log format for every process, with the running job on every line a task logs.

The lifecycle middleware sets ``current_job`` in the worker thread before a message runs and
clears it after, so any logger (the task's own, dramatiq's, a library's) logging in between gets
the job id, actor, queue and attempt through ``JobContextFilter``. ``logging_config()`` builds the
``LOGGING`` setting: ``plain`` lines (job context as ``key=value`` at the end) or ``json`` lines
(one object per line, for log shippers). Messages and tracebacks pass through ``mask_text``, so a
URL with a password never reaches a log. ``quiet_console()`` keeps INFO lines off the terminal while
an operator's command prints its answer.

Stdlib only at import time: ``project/settings.py`` imports this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

from apps.tasks.masking import mask_text

LOG_FORMATS = ("plain", "json")
#: The attributes JobContextFilter puts on every record (None outside a job).
CONTEXT_FIELDS = ("job_id", "actor", "queue", "attempt")


class JobContext(NamedTuple):
    job_id: str
    actor: str
    queue: str
    attempt: int
    #: The message's timestamp (ms since the epoch): when the job was enqueued.
    enqueued_ms: int | None = None


#: The job the current worker thread is running (set by the lifecycle middleware).
current_job: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("tasks_current_job", default=None)


class JobContextFilter(logging.Filter):
    """Adds ``job_id``, ``actor``, ``queue`` and ``attempt`` to every record (None outside a job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = current_job.get()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, getattr(job, name) if job is not None else None)
        return True


class MaskingFilter(logging.Filter):
    """Masks a record's message and traceback (apps.tasks.masking) before any handler formats it:
    add it to a project's own handlers (``"()": "apps.tasks.logging.MaskingFilter"``) so they get
    the same policy as the formatters below."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


class PlainFormatter(logging.Formatter):
    """``time level logger [pid] message``, then ``job_id=… actor=… queue=… attempt=…`` inside a job."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = mask_text(super().format(record))
        if getattr(record, "job_id", None) is None:
            return line
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS)
        first, newline, rest = line.partition("\n")  # keep a traceback below the line it belongs to
        return f"{first} {context}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, process, thread,
    the job fields, and ``exc_info`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
            "process": record.process,
            "thread": record.threadName,
        }
        for name in CONTEXT_FIELDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info:
            entry["exc_info"] = mask_text(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["stack_info"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(log_format: str = "plain", level: str = "INFO") -> dict[str, Any]:
    """The ``LOGGING`` setting: one console handler with the job filter and the chosen format."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    formatter = JsonFormatter if log_format == "json" else PlainFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "job_context": {"()": f"{JobContextFilter.__module__}.{JobContextFilter.__qualname__}"},
            "masking": {"()": f"{MaskingFilter.__module__}.{MaskingFilter.__qualname__}"},
        },
        "formatters": {log_format: {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["job_context", "masking"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values())]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        if isinstance(logger, logging.Logger):  # not a PlaceHolder
            for handler in logger.handlers:
                found.setdefault(id(handler), handler)
    return list(found.values())


def _is_console(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    return any(stream is standard for standard in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


@contextlib.contextmanager
def quiet_console(level: int = logging.WARNING) -> Iterator[None]:
    """While the block runs, the handlers writing to stdout or stderr show ``level`` and above.

    For commands whose output is the answer (a table, JSON for a script): INFO lines between its
    lines would garble it. Only console handlers are raised, never a logger's level, so a file or
    a log shipper configured by the project still gets every record; levels are put back after.
    """
    raised = [(handler, handler.level) for handler in _all_handlers() if _is_console(handler)]
    for handler, old in raised:
        handler.setLevel(max(old, level))
    try:
        yield
    finally:
        for handler, old in raised:
            handler.setLevel(old)
