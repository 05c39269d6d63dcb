"""Print the task health report; exit 0 (ok), 1 (degraded) or 2 (down) for process managers and probes."""

from __future__ import annotations

import json
from typing import Any

from apps.tasks.health import EXIT_CODES, get_task_health
from apps.tasks.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Report Redis, live workers and queues; exit 0 ok, 1 degraded, 2 down."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, json: bool = False, **options: Any) -> None:
        report = get_task_health()
        if json:
            self.stdout.write(_dumps(report))
        else:
            self._print(report)
        raise SystemExit(EXIT_CODES[report["status"]])

    def _print(self, report: dict) -> None:
        redis = report["redis_connection"]
        style = {"ok": self.style.SUCCESS, "degraded": self.style.WARNING, "down": self.style.ERROR}[report["status"]]
        self.stdout.write(style(f"status: {report['status']}") + f"  (checked {report['checked_at']})")
        if not report["enabled"]:
            state = "not checked: tasks are disabled (TASKS_ENABLED=0)"
        elif redis["ok"]:
            state = f"ok, {redis['latency_ms']} ms"
        else:
            state = f"DOWN: {redis.get('error', '')}"
        self.stdout.write(f"redis: {redis['url']}  {state}")
        for error in report["configuration_errors"]:
            self.stdout.write(self.style.WARNING(f"configuration: {error}"))
        self.stdout.write(f"workers: {len(report['workers'])} live")
        for worker in report["workers"]:
            self.stdout.write(
                f"  {worker['host']}:{worker['pid']}  queues={','.join(worker['queues'])}  threads={worker['threads']}"
                f"  processed={worker['tasks_processed']}"
            )
        if report["queues"]:
            self.stdout.write(
                f"{'queue':<16}{'ready':>8}{'in flight':>11}{'delayed':>9}{'dead':>7}{'oldest s':>10}  consumers"
            )
            for name, queue in report["queues"].items():
                age = "-" if queue["oldest_age_seconds"] is None else f"{queue['oldest_age_seconds']:.1f}"
                self.stdout.write(
                    f"{name:<16}{queue['ready']:>8}{queue['in_flight']:>11}{queue['delayed']:>9}"
                    f"{queue['dead_letter']:>7}{age:>10}  {queue['consumers']}"
                )


def _dumps(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)
