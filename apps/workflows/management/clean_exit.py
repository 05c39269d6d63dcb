"""Leave a command-line process without interpreter finalisation once a Temporal client or worker ran.

The SDK's Rust threads can call into a finalising interpreter and abort it ("PyGILState_Release",
temporalio/sdk-python#300): a command that succeeded would then die with SIGABRT and a core dump.
Commands mixing this in flush their output, job records and database connections, then ``os._exit``
with the code they would have had. Only from the command line: ``call_command`` returns normally.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback


class CleanExitMixin:
    """For a ``BaseCommand``; ``self.exit_code`` (default 0) is the process's exit status."""

    exit_code = 0

    def run_from_argv(self, argv: list[str]) -> None:
        code = 1
        try:
            super().run_from_argv(argv)  # type: ignore[misc]
            code = self.exit_code
        except SystemExit as exc:  # CommandError ends here, its message already printed
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            _flush_and_exit(code)


def _flush_and_exit(code: int) -> None:
    try:
        from django.db import connections

        from apps.tasks import records

        records.stop()
        connections.close_all()
    except Exception:
        traceback.print_exc()
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
