"""Celery 5 with its Redis broker, the outside reference: the same no-op INCR and time stamp.

    celery -A bench.celery_app worker --pool threads --concurrency 8 -Q bench

Its broker is Redis DB 3 (BENCH_CELERY_URL) with every kombu key under ``<namespace>:celery:``
(kombu's ``global_keyprefix``), so it never touches the dramatiq databases and the run deletes
it all. Celery's defaults otherwise: early acknowledgement, prefetch multiplier 4; no result
backend (results ignored), no remote control or task events (nothing else writes to Redis).
"""

import os
import time

import redis
from celery import Celery

NAMESPACE = os.environ.get("BENCH_NAMESPACE", "bench-celery")
KEY_PREFIX = f"{NAMESPACE}:celery:"
QUEUE = "bench"

app = Celery("bench", broker=os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/3"))
app.conf.update(
    broker_transport_options={"global_keyprefix": KEY_PREFIX},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
)
#: Counters and time stamps go where the harness reads them: the dramatiq broker's database.
counters = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"))


@app.task(name="bench.noop")
def noop(counter_key: str) -> None:
    counters.incr(counter_key)


@app.task(name="bench.stamp")
def stamp(key: str) -> None:
    started = time.time()
    counters.rpush(key, repr(started))
