"""``manage.py workflows``: list, describe, cancel, signal (and start) Temporal jobs.

Thin: parse the arguments, call ``apps.workflows.control`` (or the JobRouter), print a table or JSON.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.workflows.management.clean_exit import CleanExitMixin

#: The widest a workflow type is shown in ``list`` (``--json`` has it whole).
TYPE_WIDTH = 40


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--arg {text!r} is not JSON: {exc}") from None


class Command(CleanExitMixin, BaseCommand):
    help = "Temporal jobs: list, describe, cancel, signal, start."

    def add_arguments(self, parser) -> None:
        from apps.workflows.control import STATUSES

        parser.add_argument("--json", action="store_true", dest="as_json", help="Machine-readable output.")
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="Recent workflows on the task queue (one row per id: its latest run).")
        listing.add_argument("--status", choices=sorted(STATUSES))
        listing.add_argument("--type", dest="workflow_type", help="Only this workflow type.")
        listing.add_argument("--limit", type=int, default=20)
        describe = sub.add_parser("describe", help="One workflow: status, progress, pending activities, record.")
        describe.add_argument("job_id")
        cancel = sub.add_parser("cancel", help="Request cancellation (the workflow compensates).")
        cancel.add_argument("job_id")
        cancel.add_argument("--reason", default="", help="Kept in the record beside who cancelled.")
        signal = sub.add_parser("signal", help="Send a signal, e.g. pause, resume, approve.")
        signal.add_argument("job_id")
        signal.add_argument("signal")
        signal.add_argument("--arg", action="append", default=[], help="A JSON argument (repeat for more).")
        start = sub.add_parser("start", help="Start a job through the JobRouter (a workflow runs on Temporal).")
        start.add_argument("name", help="A workflow type or dramatiq actor name.")
        start.add_argument("--arg", action="append", default=[], help="A JSON argument (repeat for more).")
        start.add_argument("--expected-seconds", type=float, default=0.0)
        start.add_argument("--steps", type=int, default=1)
        start.add_argument("--compensation", action="store_true", help="The job needs compensation.")

    def handle(self, *args: Any, action: str, as_json: bool = False, **options: Any) -> None:
        from apps.workflows import control
        from apps.workflows.client import WorkflowsDisabled

        self.as_json = as_json
        try:
            getattr(self, f"_{action}")(**options)
        except WorkflowsDisabled as exc:
            raise CommandError(str(exc)) from None
        except (control.UnknownJob, ValueError) as exc:
            raise CommandError(str(exc)) from None

    def _print_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def _list(self, status: str | None, workflow_type: str | None, limit: int, **options: Any) -> None:
        from apps.tasks.text import table
        from apps.workflows.control import list_workflows

        rows = list_workflows(status=status, workflow_type=workflow_type, limit=limit)
        if self.as_json:
            return self._print_json(rows)
        if not rows:
            return self.stdout.write("(no workflows)")
        headers = ["job id", "type", "status", "runs", "record", "started"]
        cells = [
            [row["job_id"], row["workflow_type"], row["status"], row["runs"], row["record_status"] or "-",
             row["start_time"]]
            for row in rows
        ]  # fmt: skip
        # Ids stay whole (they are copied into the next command); a long type name is cut, and said so.
        for line in table(headers, cells, limits={"type": TYPE_WIDTH}):
            self.stdout.write(line)

    def _describe(self, job_id: str, **options: Any) -> None:
        from apps.workflows.control import describe

        data = describe(job_id)
        if self.as_json:
            return self._print_json(data)
        self.stdout.write(f"job {data['job_id']}  {data['workflow_type']}  {data['status']}")
        self.stdout.write(f"  run {data['run_id']}  started {data['start_time']}  closed {data['close_time'] or '-'}")
        if data["progress"] is not None:
            self.stdout.write(f"  progress: {json.dumps(data['progress'], default=str)}")
        for pending in data["pending_activities"]:
            failure = f"  last failure: {pending['last_failure']}" if pending["last_failure"] else ""
            self.stdout.write(
                f"  pending {pending['activity_type']} #{pending['activity_id']} {pending['state']} "
                f"attempt {pending['attempt']}{failure}"
            )
        record = data["record"]
        self.stdout.write(f"  record: {record['status'] if record else '(none)'}")

    def _cancel(self, job_id: str, reason: str, **options: Any) -> None:
        from apps.workflows.control import cancel

        text = cancel(job_id, by=f"{getpass.getuser()} (manage.py workflows cancel)", reason=reason)
        self._done({"job_id": job_id, "cancel_requested": True, "reason": text}, f"cancellation requested for {job_id}")

    def _signal(self, job_id: str, signal: str, arg: list[str], **options: Any) -> None:
        from apps.workflows.control import signal as send

        send(job_id, signal, [_json_arg(text) for text in arg])
        self._done({"job_id": job_id, "signal": signal}, f"signal {signal!r} sent to {job_id}")

    def _start(self, name: str, arg: list[str], expected_seconds: float, steps: int, compensation: bool,
               **options: Any) -> None:  # fmt: skip
        from apps.workflows.router import Job, JobRouter, RoutingError

        job = Job(name, args=[_json_arg(text) for text in arg], expected_duration=expected_seconds, steps=steps,
                  needs_compensation=compensation)  # fmt: skip
        router = JobRouter()
        try:
            job_id = router.enqueue(job)
        except RoutingError as exc:
            raise CommandError(str(exc)) from None
        backend = router.route(job).value
        self._done({"job_id": job_id, "backend": backend}, f"started {name} on {backend}: {job_id}")

    def _done(self, data: dict, text: str) -> None:
        if self.as_json:
            self._print_json(data)
        else:
            self.stdout.write(text)
