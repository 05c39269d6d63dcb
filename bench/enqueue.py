"""Enqueue rate: messages per second one thread sends, per system (no worker consumes meanwhile).

    .venv/bin/python -m bench.enqueue SYSTEM [--count 3000] [--runs 3]     # prints {"rates": [...]}

``bare``: ``actor.send()`` on a plain dramatiq RedisBroker (default middleware). ``full``:
``apps.tasks.enqueue.enqueue`` (the job record written first, then the message and its event in one
Redis round-trip). ``django_dramatiq``: ``actor.send()`` with AdminMiddleware (a Task row written
per send). ``celery``: ``task.delay()``. Each system runs in its own process (Django settings differ),
started by the harness with the run's environment; 50 sends warm up first. The messages are
deleted after each run, and the records at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SYSTEMS = ("bare", "full", "django_dramatiq", "celery")
ARGUMENT = "enqueue-bench"


def _bare() -> tuple[Callable[[], object], Callable[[], None], Callable[[], None]]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace=f"{os.environ['BENCH_NAMESPACE']}-bare")
    actor = dramatiq.Actor(
        lambda counter_key: None, broker=broker, actor_name="noop", queue_name="bench", priority=0, options={}
    )
    return (lambda: actor.send(ARGUMENT)), (lambda: broker.flush("bench")), (lambda: None)


def _django(settings_module: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()


def _truncate(table: str) -> Callable[[], None]:
    def truncate() -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table}")

    return truncate


def _full() -> tuple[Callable[[], object], Callable[[], None], Callable[[], None]]:
    _django("bench.settings")
    import dramatiq

    from apps.tasks.enqueue import enqueue, resolve_actor

    actor = resolve_actor("noop")
    broker = dramatiq.get_broker()
    return (lambda: enqueue(actor, args=(ARGUMENT,))), (lambda: broker.flush("bench")), _truncate("tasks_jobrecord")


def _django_dramatiq() -> tuple[Callable[[], object], Callable[[], None], Callable[[], None]]:
    _django("bench.django_dramatiq_settings")
    import dramatiq

    from bench.tasks import noop

    broker = dramatiq.get_broker()
    return (lambda: noop.send(ARGUMENT)), (lambda: broker.flush("bench")), _truncate("django_dramatiq_task")


def _celery() -> tuple[Callable[[], object], Callable[[], None], Callable[[], None]]:
    import redis

    from bench.celery_app import KEY_PREFIX, QUEUE, noop

    client = redis.Redis.from_url(os.environ["BENCH_CELERY_URL"])
    return (lambda: noop.delay(ARGUMENT)), (lambda: client.delete(KEY_PREFIX + QUEUE)), (lambda: None)


def measure(system: str, count: int, runs: int, warm_up: int = 50) -> list[float]:
    """Send ``count`` messages ``runs`` times from one thread; the rate of each run."""
    send, flush, finish = {"bare": _bare, "full": _full, "django_dramatiq": _django_dramatiq, "celery": _celery}[
        system
    ]()
    rates = []
    try:
        for _ in range(warm_up):
            send()
        flush()
        for _ in range(runs):
            started = time.perf_counter()
            for _ in range(count):
                send()
            rates.append(count / (time.perf_counter() - started))
            flush()
    finally:
        flush()
        finish()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("--count", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps({"system": args.system, "rates": measure(args.system, args.count, args.runs)}))


if __name__ == "__main__":
    main()
