"""What the "Queues & workers" admin page shows, and its server-rendered SVG chart."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from html import escape
from typing import Any

import dramatiq

from apps.tasks import keys
from apps.tasks.broker import get_redis
from apps.tasks.services import queues, workers

CHART_MINUTES = 60
RECENT_EVENTS = 25


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


def recent_events(count: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """The newest lifecycle events, newest first."""
    stream = keys.events(dramatiq.get_broker().namespace)
    events = []
    for entry_id, fields in get_redis().xrevrange(stream, count=count):
        event = {key.decode(): value.decode() for key, value in fields.items()}
        event["meta"] = json.loads(event.get("meta") or "{}")
        event["stream_id"] = entry_id.decode()
        events.append(event)
    return events


def render_chart(series: list[dict[str, int]], width: int = 720, height: int = 180) -> str:
    """Completed (green) and failed (red) jobs per minute as an inline SVG: no scripts, no CDN."""
    pad_left, pad_bottom, pad_top = 40, 20, 10
    plot_width, plot_height = width - pad_left - 10, height - pad_bottom - pad_top
    peak = max([1, *(point["completed"] for point in series), *(point["failed"] for point in series)])
    step = plot_width / max(1, len(series) - 1)

    def polyline(name: str, colour: str) -> str:
        points = " ".join(
            f"{pad_left + index * step:.1f},{pad_top + plot_height - point[name] / peak * plot_height:.1f}"
            for index, point in enumerate(series)
        )
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}" class="series-{name}"/>'

    last = series[-1] if series else {"completed": 0, "failed": 0}
    label = escape(
        f"jobs per minute over the last {len(series)} minutes; "
        f"now {last['completed']} completed, {last['failed']} failed"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{label}">'
        f'<line x1="{pad_left}" y1="{pad_top + plot_height}" x2="{width - 10}" '
        f'y2="{pad_top + plot_height}" stroke="#999"/>'
        f'<line x1="{pad_left}" y1="{pad_top}" x2="{pad_left}" y2="{pad_top + plot_height}" stroke="#999"/>'
        f'<text x="4" y="{pad_top + 10}" font-size="11">{peak}</text>'
        f'<text x="4" y="{pad_top + plot_height}" font-size="11">0</text>'
        f'<text x="{pad_left}" y="{height - 4}" font-size="11">-{len(series)} min</text>'
        f'<text x="{width - 40}" y="{height - 4}" font-size="11">now</text>'
        f"{polyline('completed', '#2e7d32')}{polyline('failed', '#c62828')}</svg>"
    )


def dashboard_data() -> dict[str, Any]:
    """Queues, live workers, the chart and recent events: every figure read from Redis."""
    live = workers.live_workers()
    stats = queues.queue_stats()
    for stat in stats:
        stat.consumers = sum(1 for worker in live if stat.name in worker.queues)
    series = minute_series()
    completed = sum(point["completed"] for point in series)
    failed = sum(point["failed"] for point in series)
    now = time.time()
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "queues": [stat.as_dict() for stat in stats],
        "workers": [{**worker.as_dict(), "last_seen_seconds_ago": round(now - worker.last_seen, 1)} for worker in live],
        "series": series,
        "chart_svg": render_chart(series),
        "completed_last_hour": completed,
        "failed_last_hour": failed,
        "failure_rate": round(failed / (completed + failed), 4) if completed + failed else 0.0,
        "events": recent_events(),
    }
