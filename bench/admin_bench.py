"""Admin job list, job API and health endpoint response times with many job records on PostgreSQL.

    .venv/bin/python bench/admin_bench.py [--rows 1000000] [--database postgresql://.../bench_admin] [--json]

Rows are generated inside PostgreSQL (generate_series), once; later runs reuse them. Each page is
requested through Django's test client as a logged-in superuser; figures are the median of
``--repeat`` requests after one warm-up, with min-max.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import prepare_database  # noqa: E402

GENERATE = """
INSERT INTO tasks_jobrecord (message_id, actor_name, queue_name, args, kwargs, args_complete, status, attempts,
    error_type, error_message, traceback, result, enqueued_at, started_at, finished_at, duration_ms, worker,
    next_retry_at, updated_at)
SELECT md5(i::text), (ARRAY['send_email','resize_image','process_document_async','sync_account'])[1 + i %% 4],
    (ARRAY['default','high','low','knowledge'])[1 + i %% 4], jsonb_build_array(i), '{}'::jsonb, true,
    (ARRAY['completed','completed','completed','completed','completed','completed','completed','failed',
           'dead_letter','retrying','pending','running'])[1 + i %% 12],
    1, '', '', '', NULL, now() - (i || ' seconds')::interval, now() - (i || ' seconds')::interval,
    now() - (i || ' seconds')::interval, 5, 'bench:1', NULL, now() - (i || ' seconds')::interval
FROM generate_series(%s, %s) AS i
"""


PAGES = {
    "admin list": "/admin/dramatiq_tasks/jobrecord/",
    "admin list, status=dead_letter": "/admin/dramatiq_tasks/jobrecord/?status__exact=dead_letter",
    "admin list, queue=low, page 50": "/admin/dramatiq_tasks/jobrecord/?queue_name=low&p=50",
    "admin list, actor=send_email": "/admin/dramatiq_tasks/jobrecord/?actor_name=send_email",
    "admin search by id": "/admin/dramatiq_tasks/jobrecord/?q={first_id}",
    "job API, status=failed": "/tasks/api/jobs/?status=failed&page_size=50",
    "health endpoint": "/health/tasks/",
    "dashboard data": "/admin/dramatiq_tasks/jobrecord/dashboard/data/",
}


def admin_database(url: str, rows: int) -> str:
    """The database holding ``rows`` generated records: ``<name>_admin`` for 1 M, ``<name>_admin_<rows>`` else."""
    from bench.common import database_name, with_database_name

    name = database_name(url)
    return with_database_name(url, f"{name}_admin" if rows == 1_000_000 else f"{name}_admin_{rows}")


def setup(database_url: str) -> None:
    """Django on ``database_url`` (created if missing, migrated)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["DATABASE_URL"] = prepare_database(database_url)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)


def ensure_rows(rows: int) -> int:
    """Generate job records up to ``rows`` (once: later runs reuse them); the count there is."""
    from django.db import connection

    from apps.tasks.models import JobRecord

    existing = JobRecord.objects.count()
    if existing < rows:
        print(f"generating {rows - existing:,} job records ...", file=sys.stderr)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for low in range(existing, rows, 200_000):
                cursor.execute(GENERATE, [low + 1, min(low + 200_000, rows)])
            cursor.execute("ANALYZE tasks_jobrecord")
        print(f"generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return JobRecord.objects.count()


def measure_pages(repeat: int) -> dict[str, list[float]]:
    """Response times in ms of each page (logged-in superuser, Django's test client), after one warm-up."""
    from django.contrib.auth.models import User
    from django.test import Client

    from apps.tasks.models import JobRecord

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    first_id = JobRecord.objects.values_list("pk", flat=True).first()
    results = {}
    try:
        for name, url in PAGES.items():
            url = url.format(first_id=first_id)
            client.get(url)  # warm-up
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code not in (200, 503):
                    raise RuntimeError(f"{url} answered {response.status_code}")
            results[name] = times
    finally:
        client.logout()  # the session lives in Redis (the sessions cache): leave nothing behind
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/bench_admin")
    parser.add_argument("--json", action="store_true", help="print one JSON document (for the harness)")
    args = parser.parse_args()

    setup(args.database)
    total = ensure_rows(args.rows)
    pages = measure_pages(args.repeat)
    if args.json:
        print(json.dumps({"rows": total, "pages": pages}))
        return
    print(f"\nAdmin benchmark: {total:,} job records on PostgreSQL; median of {args.repeat} (min-max)\n")
    print("| page | ms |")
    print("|---|---|")
    for name, times in pages.items():
        print(f"| {name} | {statistics.median(times):.0f} ({min(times):.0f}-{max(times):.0f}) |")
    print("\nTarget: admin list <= 300 ms at 1,000,000 rows.")


if __name__ == "__main__":
    main()
