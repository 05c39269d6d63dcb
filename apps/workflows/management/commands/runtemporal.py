"""``manage.py runtemporal``: Temporal workers for the discovered workflow and activity modules.

One process per worker (``--workers``, default ``TEMPORAL_CONFIG.workers``); with more than one,
this process supervises them and forwards SIGTERM/SIGINT. SIGTERM stops gracefully: polling stops,
running activities get ``shutdown_timeout`` seconds. The process then ends through ``CleanExitMixin``
(flush, then ``os._exit``): the SDK's Rust threads can abort an interpreter that finalises normally
after a worker ran (sdk-python #300), turning a clean stop into a crash report and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.workflows.management.clean_exit import CleanExitMixin

logger = logging.getLogger(__name__)


class Command(CleanExitMixin, BaseCommand):
    help = "Run Temporal workers for the discovered workflows and activities (TEMPORAL_CONFIG)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workers", type=int, help="Worker processes (default: TEMPORAL_CONFIG.workers).")
        parser.add_argument("--threads", type=int, help="Activity threads per worker (default: activity_threads).")
        parser.add_argument("--task-queue", help="Task queue to poll (default: TEMPORAL_CONFIG.task_queue).")

    def handle(
        self,
        *args: Any,
        workers: int | None = None,
        threads: int | None = None,
        task_queue: str | None = None,
        **options: Any,
    ) -> None:
        from apps.workflows.client import WorkflowsDisabled, require_enabled

        try:
            config = require_enabled()
        except WorkflowsDisabled as exc:
            raise CommandError(str(exc)) from None
        updates: dict[str, Any] = {}
        if threads is not None:
            updates["activity_threads"] = threads
        if task_queue:
            updates["task_queue"] = task_queue
        try:
            config = config.model_validate({**config.model_dump(), **updates})
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        count = config.workers if workers is None else workers
        if count < 1:
            raise CommandError("--workers must be 1 or more")
        self.exit_code = self._supervise(count, threads, task_queue) if count > 1 else self._serve(config)

    def _serve(self, config) -> int:
        from apps.tasks.records import worker_label
        from apps.workflows.worker import run_worker

        identity = worker_label()

        def ready(definitions) -> None:
            self.stdout.write(
                f"runtemporal: worker {identity} on {config.address} (namespace {config.namespace}), "
                f"task queue {config.task_queue!r}; workflows: {', '.join(sorted(definitions.workflows))}; "
                f"activities: {len(definitions.activities)}; ready"
            )
            self.stdout.flush()

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await run_worker(stop, config=config, identity=identity, on_ready=ready)

        try:
            asyncio.run(main())
        except Exception:
            logger.exception("Temporal worker %s failed", identity)
            return 1
        self.stdout.write(f"runtemporal: worker {identity} stopped")
        return 0

    def _supervise(self, count: int, threads: int | None, task_queue: str | None) -> int:
        """Start ``count`` single-worker processes; forward stop signals; end when they have ended."""
        argv = [sys.executable, "-m", "django", "runtemporal", "--workers", "1"]
        if threads is not None:
            argv += ["--threads", str(threads)]
        if task_queue:
            argv += ["--task-queue", task_queue]
        children = [subprocess.Popen(argv) for _ in range(count)]
        stopping = False

        def forward(signum, frame) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        self.stdout.write(f"runtemporal: supervising {count} workers: {', '.join(str(c.pid) for c in children)}")
        self.stdout.flush()
        codes: dict[int, int] = {}
        while len(codes) < len(children):
            pid, status = os.wait()
            codes[pid] = os.waitstatus_to_exitcode(status)
            if not stopping:  # a worker died on its own: stop the rest, let the process manager restart us
                logger.error("Temporal worker process %s exited with %s; stopping the others", pid, codes[pid])
                forward(signal.SIGTERM, None)
        for child in children:
            child.returncode = codes.get(child.pid, 0)
        return 0 if stopping and all(code == 0 for code in codes.values()) else 1
