"""``manage.py tasks``: queues, workers, jobs, dead letters, purge and stats from the command line.

Thin: parse the arguments, call the services, print a table (or JSON with ``--json``, given before
or after the action). Table cells are shortened with "…" and a footer says so; JSON is whole.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from apps.tasks.management.base import OperatorCommand
from apps.tasks.models import JobStatus
from apps.tasks.services import control, dead_letters, queues, records, workers
from apps.tasks.text import table


class Command(OperatorCommand):
    help = "Operate the task queues: queues, workers, jobs, dead, retry, cancel, abort, pause, resume, purge, stats."

    def add_arguments(self, parser) -> None:
        # --json before the action (``tasks --json queues``) or after it (``tasks queues --json``):
        # each action inherits it from one parent parser whose default is SUPPRESS, so an action
        # parsed without it leaves the top-level value alone instead of resetting it to False.
        shared = argparse.ArgumentParser(add_help=False)
        for target, default in ((parser, False), (shared, argparse.SUPPRESS)):
            target.add_argument(
                "--json", action="store_true", dest="as_json", default=default, help="Machine-readable output."
            )
        subparsers = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        def add(name: str, text: str) -> argparse.ArgumentParser:
            return subparsers.add_parser(name, help=text, parents=[shared])

        add("queues", "Ready, in-flight, delayed and dead-letter counts per queue.")
        add("workers", "Live worker processes.")
        jobs = add("jobs", "Recent job records.")
        jobs.add_argument("--status", choices=JobStatus.values)
        jobs.add_argument("--queue")
        jobs.add_argument("--actor")
        jobs.add_argument("--limit", type=int, default=20)
        dead = add("dead", "Dead letters; --requeue ID|--all or --delete ID|--all.")
        dead.add_argument("--queue")
        dead.add_argument("--limit", type=int, default=50)
        action = dead.add_mutually_exclusive_group()
        # The ID is optional so that ``--requeue --all`` parses; do_dead wants exactly one of the two.
        action.add_argument("--requeue", nargs="?", const="", metavar="ID", help="Requeue one dead letter, or --all.")
        action.add_argument("--delete", nargs="?", const="", metavar="ID", help="Delete one dead letter, or --all.")
        dead.add_argument("--all", action="store_true", help="With --requeue or --delete: every dead letter.")
        purge = add("purge", "Delete every message of a queue (DEBUG only unless --force).")
        purge.add_argument("queue")
        purge.add_argument("--force", action="store_true", help="Allow with DEBUG off.")
        purge.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        cancel = add("cancel", "Cancel pending or delayed jobs: they never run.")
        cancel.add_argument("job_ids", nargs="+", metavar="ID")
        cancel.add_argument("--reason", default="", help="Kept in the record beside who cancelled.")
        retry = add("retry", "Run finished jobs again (a dead letter is requeued, others sent anew).")
        retry.add_argument("job_ids", nargs="+", metavar="ID")
        abort = add("abort", "Interrupt running jobs in their workers; their records end cancelled.")
        abort.add_argument("job_ids", nargs="+", metavar="ID")
        abort.add_argument("--reason", default="", help="Kept in the record beside who aborted.")
        abort.add_argument(
            "--grace", type=float, default=0, metavar="SECONDS", help="Time the job has to stop itself first."
        )
        for verb, text in (("pause", "Stop every worker fetching from a queue (enqueue goes on)."),
                           ("resume", "Let workers fetch from a paused queue again.")):  # fmt: skip
            add(verb, text).add_argument("queue")
        stats = add("stats", "Completed and failed jobs per minute over a window.")
        stats.add_argument("--minutes", type=int, default=60)

    def handle(self, *args: Any, action: str, as_json: bool, **options: Any) -> None:
        self.as_json = as_json
        try:
            getattr(self, f"do_{action}")(**options)
        except (dead_letters.UnknownQueueError, records.InvalidFilter) as exc:
            raise CommandError(str(exc)) from None

    # --- output -----------------------------------------------------------------------------

    def emit(self, data: Any, headers: list[str], rows: list[list[Any]], limits: dict[str, int] | None = None) -> None:
        """JSON of ``data``, or a table of ``rows``; ``limits`` caps the width of the named columns
        (one line, "…" where cut), and a footer says which were cut and where the full text is."""
        if self.as_json:
            self.stdout.write(json.dumps(data, indent=2, default=str))
            return
        if not rows:
            self.stdout.write("(none)")
            return
        for line in table(headers, rows, limits):
            self.stdout.write(line)

    # --- actions ----------------------------------------------------------------------------

    def do_queues(self, **options: Any) -> None:
        live = workers.live_workers()
        stats = queues.queue_stats()
        for stat in stats:
            stat.consumers = sum(1 for worker in live if stat.name in worker.queues)
        age = lambda s: "-" if s.oldest_age_seconds is None else f"{s.oldest_age_seconds:.1f}s"  # noqa: E731
        self.emit(
            [stat.as_dict() for stat in stats],
            ["queue", "ready", "in flight", "delayed", "dead", "oldest", "consumers", "paused"],
            [
                [s.name, s.ready, s.in_flight, s.delayed, s.dead_letter, age(s), s.consumers, "yes" if s.paused else ""]
                for s in stats
            ],
        )

    def do_workers(self, **options: Any) -> None:
        live = workers.live_workers()
        now = datetime.now(timezone.utc).timestamp()
        self.emit(
            [worker.as_dict() for worker in live],
            ["host", "pid", "queues", "threads", "processed", "up", "last seen"],
            [
                [w.host, w.pid, ",".join(w.queues), w.threads, w.tasks_processed,
                 f"{now - w.started_at:.0f}s", f"{now - w.last_seen:.1f}s ago"]
                for w in live
            ],
        )  # fmt: skip

    def do_jobs(self, *, status: str | None, queue: str | None, actor: str | None, limit: int, **options: Any) -> None:
        rows, _ = records.page_of(records.filter_records(status=status, queue=queue, actor=actor), 1, limit)
        data = [records.record_as_dict(row) for row in rows]
        self.emit(
            data,
            ["id", "actor", "queue", "status", "attempts", "enqueued", "error"],
            [
                [d["id"], d["actor"], d["queue"], d["status"], d["attempts"], d["enqueued_at"][:19],
                 d["error_type"].rsplit(".", 1)[-1] + ": " + d["error_message"] if d["error_type"] else ""]
                for d in data
            ],
            limits={"error": 60},
        )  # fmt: skip

    def do_dead(
        self, *, queue: str | None, limit: int, requeue: str | None, delete: str | None, all: bool, **options: Any
    ) -> None:
        if requeue is None and delete is None:
            if all:
                raise CommandError("--all goes with --requeue or --delete.")
            self._list_dead(queue, limit)
            return
        operation, message_id = ("requeue", requeue) if requeue is not None else ("delete", delete)
        if bool(message_id) == all:
            raise CommandError(f"--{operation} needs a dead letter ID or --all (one of them, not both).")
        if requeue is not None:
            done = (
                dead_letters.requeue_all(queue)
                if all
                else [self._one(dead_letters.requeue_dead_letter, requeue, queue)]
            )
            self.stdout.write(
                json.dumps({"requeued": done}) if self.as_json else f"Requeued {len(done)} dead letter(s)."
            )
            return
        if delete is not None:
            if all:
                count = dead_letters.delete_all(queue)
            else:
                self._one(dead_letters.delete_dead_letter, delete, queue)
                count = 1
            self.stdout.write(json.dumps({"deleted": count}) if self.as_json else f"Deleted {count} dead letter(s).")

    def _list_dead(self, queue: str | None, limit: int) -> None:
        letters = dead_letters.list_dead_letters(queue, limit=limit)
        self.emit(
            [letter.as_dict() for letter in letters],
            ["id", "queue", "actor", "dead since", "args"],
            [
                [letter.message_id, letter.queue_name, letter.actor_name or f"(corrupt: {letter.decode_error})",
                 letter.dead_at.isoformat()[:19], json.dumps(letter.as_dict()["args"])]
                for letter in letters
            ],
            limits={"actor": 50, "args": 40},
        )  # fmt: skip

    def _one(self, operation, message_id: str, queue: str | None) -> Any:
        try:
            return operation(message_id, queue)
        except (dead_letters.DeadLetterNotFound, dead_letters.CorruptMessageError) as exc:
            raise CommandError(str(exc)) from None

    def do_purge(self, *, queue: str, force: bool, yes: bool, **options: Any) -> None:
        dead_letters.check_queue(queue)
        if not settings.DEBUG and not force:
            raise CommandError(f"Refusing to purge {queue!r} with DEBUG off; add --force if you mean it.")
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("Purging asks for confirmation: run it in a terminal or add --yes.")
            answer = input(f"Delete every message of queue {queue!r} (ready, delayed, dead)? Type the queue name: ")
            if answer.strip() != queue:
                raise CommandError("Not confirmed; nothing was deleted.")
        removed = queues.purge_queue(queue)
        self.stdout.write(
            json.dumps({"purged": removed}) if self.as_json else f"Purged {removed} message(s) from {queue!r}."
        )

    def do_cancel(self, *, job_ids: list[str], reason: str, **options: Any) -> None:
        by = f"{getpass.getuser()} (manage.py tasks cancel)"
        cancelled, refused = control.cancel_jobs(job_ids, by=by, reason=reason)
        self._report(job_ids, refused, "cancelled", {"cancelled": cancelled}, [f"Cancelled {i}." for i in cancelled])

    def do_abort(self, *, job_ids: list[str], reason: str, grace: float, **options: Any) -> None:
        by = f"{getpass.getuser()} (manage.py tasks abort)"
        asked, refused = control.abort_jobs(job_ids, by=by, reason=reason, grace_seconds=grace)
        lines = [f"Abort of {job_id} requested." for job_id in asked]
        self._report(job_ids, refused, "aborted", {"abort_requested": asked}, lines)

    def do_retry(self, *, job_ids: list[str], **options: Any) -> None:
        retried, refused = records.retry_jobs(job_ids)
        sent = dict(zip([job_id for job_id in job_ids if job_id not in refused], retried, strict=True))
        lines = [f"Retried {old} as {new}." if old != new else f"Requeued {old}." for old, new in sent.items()]
        self._report(job_ids, refused, "retried", {"retried": sent}, lines)

    def _report(self, job_ids: list[str], refused: dict[str, str], verb: str, data: dict, lines: list[str]) -> None:
        """Print what was done and, on stderr, why the rest was refused; fail when any was."""
        if self.as_json:
            self.stdout.write(json.dumps({**data, "refused": refused}))
        else:
            for line in lines:
                self.stdout.write(line)
            for why in refused.values():
                self.stderr.write(f"Not {verb}: {why}")
        if refused:
            raise CommandError(f"{len(refused)} of {len(job_ids)} job(s) not {verb}.")

    def do_pause(self, *, queue: str, **options: Any) -> None:
        name = control.pause_queue(queue, by=f"{getpass.getuser()} (manage.py tasks pause)")
        self.stdout.write(json.dumps({"paused": name}) if self.as_json else f"Paused {name!r}: workers fetch nothing.")

    def do_resume(self, *, queue: str, **options: Any) -> None:
        resumed = control.resume_queue(queue, by=f"{getpass.getuser()} (manage.py tasks resume)")
        if self.as_json:
            self.stdout.write(json.dumps({"resumed": queue if resumed else None}))
        else:
            self.stdout.write(f"Resumed {queue!r}." if resumed else f"{queue!r} was not paused.")

    def do_stats(self, *, minutes: int, **options: Any) -> None:
        if minutes < 1:
            raise CommandError("--minutes must be 1 or more")
        data = records.throughput(minutes)
        self.emit(
            data,
            ["window", "completed", "failed", "completed/min", "failed/min", "failure rate"],
            [[f"{minutes} min", data["completed"], data["failed"], data["completed_per_minute"],
              data["failed_per_minute"], f"{data['failure_rate']:.1%}"]],
        )  # fmt: skip
