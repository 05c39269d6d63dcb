"""What the "Queues & workers" admin page shows, and its server-rendered SVG chart.

Queues, workers and the health banner come from the health report (``health.get_task_health``),
which the admin passes in: the page and ``/health/tasks/`` never disagree about what is wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from html import escape
from typing import Any
from urllib.parse import urlencode

import dramatiq
import redis
from django.contrib.admin.utils import quote
from django.urls import reverse

from apps.tasks import keys
from apps.tasks.broker import get_redis
from apps.tasks.discovery import import_task_modules
from apps.tasks.models import JobRecord
from apps.tasks.records.buffer import COUNTED_STATUSES
from apps.tasks.services import limits

CHART_MINUTES = 60
RECENT_EVENTS = 25
#: The statuses the per-minute "failed" counter counts: final failures, not attempts that will be
#: retried. The "failed" link filters the job list on them.
FINAL_FAILURES = tuple(status for status, series in COUNTED_STATUSES.items() if series == "failed")
#: Worst first; the admin's message styles (ul.messagelist li.error / .warning / plain = success).
LEVELS = ("error", "warning", "success")

#: Workers of other backends for the workers panel, by kind, from the health report (``apps.workflows``
#: adds "temporal" from its report section), so this app never imports them and asks nothing twice.
_worker_sources: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {}


def register_worker_source(kind: str, rows: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """Add ``rows(report)`` to the workers panel with ``kind``; registering a kind again replaces it.

    A row has the panel's keys: ``worker_id`` (unique), ``host``, ``pid`` (or None), ``queues``,
    ``last_seen_seconds_ago``; ``threads``, ``tasks_processed``, ``uptime_seconds`` may be None.
    """
    _worker_sources[kind] = rows


def dashboard_workers(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Live dramatiq workers (the registry), then each registered source's, every row with its ``kind``."""
    now = time.time()
    workers = [
        {
            **worker,
            "kind": "dramatiq",
            "last_seen_seconds_ago": round(now - worker["last_seen"], 1),
            "uptime_seconds": round(now - worker["started_at"]),
        }
        for worker in report.get("workers", [])
    ]
    for kind, rows in _worker_sources.items():
        workers.extend({**row, "kind": kind} for row in rows(report))
    return workers


def minute_series(minutes: int = CHART_MINUTES) -> list[dict[str, int]]:
    """Completed and failed jobs for each of the last ``minutes`` minutes, oldest first (one round-trip)."""
    namespace = dramatiq.get_broker().namespace
    current = int(time.time() // 60)
    span = range(current - minutes + 1, current + 1)
    pipeline = get_redis().pipeline(transaction=False)
    for minute in span:
        pipeline.hgetall(keys.minute_counts(namespace, minute))
    series = []
    for minute, counts in zip(span, pipeline.execute(), strict=True):
        series.append(
            {
                "minute": minute * 60,
                "completed": int(counts.get(b"completed", 0)),
                "failed": int(counts.get(b"failed", 0)),
            }
        )
    return series


def job_list_url(**filters: str) -> str:
    """The admin job list with these query-string filters."""
    base = reverse("admin:dramatiq_tasks_jobrecord_changelist")
    return f"{base}?{urlencode(filters)}" if filters else base


def recent_events(count: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """The newest lifecycle events, newest first, with links to their job record (when it exists)
    and to the job list of their queue."""
    stream = keys.events(dramatiq.get_broker().namespace)
    events = []
    for entry_id, fields in get_redis().xrevrange(stream, count=count):
        event = {key.decode(): value.decode() for key, value in fields.items()}
        event["meta"] = json.loads(event.get("meta") or "{}")
        event["stream_id"] = entry_id.decode()
        events.append(event)
    # One query: an event may outlive its record (retention, delete), and a dead link is worse than none.
    recorded = set(JobRecord.objects.filter(pk__in={e.get("job_id") for e in events}).values_list("pk", flat=True))
    for event in events:
        job_id, queue = event.get("job_id"), event.get("queue")
        event["job_url"] = (
            reverse("admin:dramatiq_tasks_jobrecord_change", args=[quote(job_id)]) if job_id in recorded else None
        )
        event["queue_url"] = job_list_url(queue_name=queue) if queue else None
    return events


def format_rate(count: int, seconds: int, noun: str = "") -> str:
    """A rate limit with its unit, in the largest whole one: "3 per 1 s", "100 per 1 min", "7 per 90 s"
    (with ``noun``: "3 starts per 1 s")."""
    counted = f"{count} {noun}" if noun else str(count)
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{counted} per {seconds // size} {unit}"
    return f"{counted} per {seconds} s"


def actor_limits() -> list[dict[str, Any]]:
    """The actors that declare limits (``limits.usage``), with their rate in words and a link to their jobs."""
    import_task_modules()  # the admin's process declares no actor until something imports them
    return [
        {
            **row,
            "rate": format_rate(*row["rate_limit"]) if row["rate_limit"] else None,
            "list_url": job_list_url(actor_name=row["actor"]),
        }
        for row in limits.usage(dramatiq.get_broker())
    ]


def describe_actor_limits(actor_name: str) -> str | None:
    """The actor's limits in one line, e.g. "one_of_two: at most 2 running at once (1 now); at most
    3 starts per 1 s"; None when it declares none, or Redis does not answer (the job list works without)."""
    import_task_modules()
    try:
        row = limits.actor_usage(dramatiq.get_broker(), actor_name)
    except redis.RedisError:
        return None
    if row is None:
        return None
    parts = []
    if row["concurrency"] is not None:
        parts.append(f"at most {row['concurrency']} running at once ({row['running']} now)")
    if row["rate_limit"]:
        count, seconds = row["rate_limit"]
        parts.append(f"at most {format_rate(count, seconds, 'start' if count == 1 else 'starts')}")
    return f"{actor_name}: {'; '.join(parts)}"


def _nice_ceiling(value: int) -> int:
    """The axis top: 1, 2, 4, 6, 8, 10, 20, 40... at or above ``value``, so the middle tick is whole."""
    if value <= 1:
        return 1
    scale = 1
    while True:
        for mantissa in (2, 4, 6, 8, 10):
            if mantissa * scale >= value:
                return mantissa * scale
        scale *= 10


def render_chart(series: list[dict[str, int]], width: int = 560, height: int = 200) -> str:
    """Completed and failed jobs per minute as an inline SVG: no scripts, no CDN. Colours come from
    the page's CSS (classes, currentColor), so the chart follows the admin's light or dark theme."""
    pad_left, pad_right, pad_top, pad_bottom = 56, 12, 28, 34
    plot_width, plot_height = width - pad_left - pad_right, height - pad_top - pad_bottom
    bottom = pad_top + plot_height
    top_value = _nice_ceiling(max([0, *(point[name] for point in series for name in ("completed", "failed"))]))
    step = plot_width / max(1, len(series) - 1)

    def y(value: float) -> float:
        return bottom - value / top_value * plot_height

    def text(x: float, y_: float, content: str, anchor: str = "start", css: str = "tasks-chart-label") -> str:
        return f'<text x="{x:.1f}" y="{y_:.1f}" text-anchor="{anchor}" class="{css}">{escape(content)}</text>'

    parts = []
    # Horizontal grid and the y axis: jobs per minute.
    for value in sorted({0, top_value // 2, top_value}):
        parts.append(
            f'<line x1="{pad_left}" y1="{y(value):.1f}" x2="{width - pad_right}" y2="{y(value):.1f}" '
            f'class="tasks-chart-grid" stroke="currentColor"/>'
        )
        parts.append(text(pad_left - 6, y(value) + 4, str(value), "end"))
    parts.append(text(4, 12, "jobs per minute", css="tasks-chart-label tasks-chart-title"))
    # The x axis: minutes before now, every 15 minutes.
    count = len(series)
    for index in range(count - 1, -1, -15):
        minutes_ago = count - 1 - index
        x = pad_left + index * step
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" class="tasks-chart-grid" '
            f'stroke="currentColor"/>'
        )
        label = "now" if minutes_ago == 0 else f"-{minutes_ago} min"
        parts.append(text(x, bottom + 16, label, "end" if minutes_ago == 0 else "middle"))  # "now" stays inside
    parts.append(text(pad_left + plot_width / 2, height - 2, "time (minutes before now)", "middle"))
    for name in ("completed", "failed"):
        points = " ".join(f"{pad_left + index * step:.1f},{y(point[name]):.1f}" for index, point in enumerate(series))
        parts.append(
            f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{points}" '
            f'class="tasks-series tasks-series-{name}"/>'
        )
    # The legend, top right: a line sample of each series (dashed for failed: not only colour tells them apart).
    legend_x = width - pad_right - 170
    for offset, name in ((0, "completed"), (105, "failed")):
        x = legend_x + offset
        parts.append(
            f'<line x1="{x}" y1="10" x2="{x + 22}" y2="10" stroke="currentColor" stroke-width="2" '
            f'class="tasks-series tasks-series-{name}"/>'
        )
        parts.append(text(x + 28, 14, name))

    last = series[-1] if series else {"completed": 0, "failed": 0}
    label = escape(
        f"jobs per minute over the last {count} minutes; "
        f"this minute {last['completed']} completed, {last['failed']} failed"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'class="tasks-chart" aria-label="{label}">{"".join(parts)}</svg>'
    )


def health_banner(report: dict[str, Any]) -> list[dict[str, str]]:
    """The health report's findings in words, worst first; one success line when nothing is wrong."""
    if not report.get("enabled", True):
        return [{"level": "warning", "text": "Background tasks are disabled (TASK_CONFIG.enabled is false)."}]
    redis = report["redis_connection"]
    if not redis["ok"]:
        return [{"level": "error", "text": f"Redis does not answer: {redis.get('error', 'unknown error')}."}]
    lines = [{"level": "error", "text": f"Configuration: {error}."} for error in report["configuration_errors"]]
    if not report["workers"]:
        lines.append({"level": "error", "text": "No live worker: no job runs until a worker starts."})
    elif report.get("queues_without_consumer"):
        names = ", ".join(report["queues_without_consumer"])
        lines.append({"level": "warning", "text": f"No live worker consumes queue {names}: its jobs wait."})
    if report.get("paused_queues"):
        names = ", ".join(report["paused_queues"])
        lines.append({"level": "warning", "text": f"Paused: {names} (workers fetch nothing from it until resumed)."})
    # Sections added by optional apps (e.g. "temporal"): any report entry with a status of its own.
    for name, section in report.items():
        if isinstance(section, dict) and section.get("status", "ok") != "ok":
            reason = section.get("reason") or section.get("error") or section.get("server", {}).get("error")
            lines.append(
                {"level": "warning", "text": f"{name}: {section['status']}" + (f": {reason}" if reason else "")}
            )
    if not lines:
        count = len(report["workers"])
        text = f"Healthy: {count} live worker{'s' if count != 1 else ''}, every queue consumed."
        lines.append({"level": "success", "text": text})
    return sorted(lines, key=lambda line: LEVELS.index(line["level"]))


def dashboard_data(report: dict[str, Any]) -> dict[str, Any]:
    """Queues, live workers and the banner from the health ``report``; the chart and recent events
    from Redis. Without Redis, only the banner (which says so)."""
    redis_up = report["redis_connection"]["ok"]
    series = minute_series() if redis_up else []
    completed = sum(point["completed"] for point in series)
    failed = sum(point["failed"] for point in series)
    # The window the series covers: from the start of its first minute bucket.
    since = datetime.fromtimestamp(series[0]["minute"] if series else time.time(), tz=timezone.utc)
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "status": report["status"],
        "banner": health_banner(report),
        "queues": [
            {**stat, "list_url": job_list_url(queue_name=stat["name"])} for stat in report.get("queues", {}).values()
        ],
        "workers": dashboard_workers(report),
        "series": series,
        "chart_svg": render_chart(series),
        "completed_last_hour": completed,
        "failed_last_hour": failed,
        "failed_since": since.isoformat(),
        # Exactly what the failed counter counts: final failures that finished in the window.
        "failed_url": job_list_url(
            status__in=",".join(FINAL_FAILURES), finished_at__gte=since.isoformat(timespec="seconds")
        ),
        "failure_rate": round(failed / (completed + failed), 4) if completed + failed else 0.0,
        "events": recent_events() if redis_up else [],
        "limits": actor_limits() if redis_up else [],
    }
