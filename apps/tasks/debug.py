"""Django's DEBUG error page and error mails, masked by the task layer's policy (apps.tasks.masking).

``TASK_CONFIG.merge_into`` sets both, unless the project has its own:
``DEFAULT_EXCEPTION_REPORTER_FILTER`` (settings and frame variables) and
``DEFAULT_EXCEPTION_REPORTER`` (the exception's own text, which names URLs with passwords).
"""

from __future__ import annotations

from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from apps.tasks.masking import is_secret_key, mask_text


class TaskExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's DEBUG page and error mails, with this policy on top of Django's: strings in settings
    (``CACHES[*].LOCATION``, ``DRAMATIQ_BROKER.OPTIONS.url``) and reprs of other values
    (``TASK_CONFIG``) are masked, and so are the local variables shown with a traceback.
    ``DEFAULT_EXCEPTION_REPORTER_FILTER = "apps.tasks.debug.TaskExceptionReporterFilter"``."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_text(cleansed)
        if cleansed is None or isinstance(cleansed, bool | int | float | dict | list | tuple):
            return cleansed
        return mask_text(repr(cleansed))

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> list[tuple[str, Any]]:
        return [
            (name, self.cleansed_substitute if is_secret_key(name) else _masked_local(value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def _masked_local(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_text(repr(value))


class TaskExceptionReporter(ExceptionReporter):
    """Django's reporter, with the exception's message masked (a client error often quotes its URL)."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if isinstance(data.get("exception_value"), str):
            data["exception_value"] = mask_text(data["exception_value"])
        for frame in data.get("frames", ()):
            if isinstance(frame.get("exc_cause"), BaseException):
                frame["exc_cause"] = mask_text(str(frame["exc_cause"]))
        return data
