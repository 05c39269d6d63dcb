"""Error types of Temporal jobs as dotted paths (``builtins.ValueError``), as dramatiq's job records name them.

Temporal carries an exception that is no Temporal error as an ApplicationError whose ``type`` is the
bare class name (``ConnectionFailure``). That name stays what it is, since retry policies'
``non_retryable_error_types`` match on it; ``DottedFailureConverter`` adds the dotted path as a
detail, and ``error_type`` reads it back on the workflow side. Sandbox-safe: no Django.
"""

from __future__ import annotations

import dataclasses

from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import ApplicationError, FailureError

#: Key of the detail an ApplicationError made from a plain exception carries.
ERROR_TYPE_DETAIL = "error_type"


def dotted_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class DottedFailureConverter(DefaultFailureConverter):
    """The default conversion (type = class name, same message, cause and stack), plus the dotted path."""

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure) -> None:
        from nexusrpc import HandlerError

        if not isinstance(exception, FailureError | HandlerError):
            error = ApplicationError(
                str(exception), {ERROR_TYPE_DETAIL: dotted_name(type(exception))}, type=type(exception).__name__
            )
            error.__traceback__ = exception.__traceback__
            error.__cause__ = exception.__cause__
            exception = error
        super().to_failure(exception, payload_converter, failure)


#: What every client and worker of this app converts with.
DATA_CONVERTER = dataclasses.replace(DataConverter.default, failure_converter_class=DottedFailureConverter)


def error_type(error: BaseException) -> str:
    """The dotted path of the exception behind ``error``: from the detail the converter added, else an
    ApplicationError's own ``type`` (chosen by whoever raised it), else ``error``'s class."""
    if isinstance(error, ApplicationError):
        for detail in error.details:
            if isinstance(detail, dict) and isinstance(detail.get(ERROR_TYPE_DETAIL), str):
                return detail[ERROR_TYPE_DETAIL]
        if error.type:
            return error.type
    return dotted_name(type(error))
