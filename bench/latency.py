"""Pick-up latency with an idle worker: from the moment a job is handed over to the moment it starts.

Document save → processing start (the figure with a target): the harness saves an
``apps.knowbase.models.Document`` (its post_save sends ``process_document_async`` to the
``knowledge`` queue through the enqueue helper, ``record_first=False``: the document row is the
outbox, and the job record follows through the recorder) while one idle full-stack worker runs
``rundramatiq -p 1 -t 8 -Q knowledge``. The clock starts just before ``save()`` (so the row insert
and the send are included) and stops at the timestamp of the job's lifecycle
``started`` event, which the worker takes in ``LifecycleMiddleware.before_process_message`` before
the task body runs (wall clock, same machine). The harness finds the job through its ``enqueued``
event, waits for the ``completed`` event (the worker is idle again) and then sleeps a random gap
before the next save.

For context, ``stamp`` tasks measure send → task body start on bare dramatiq, on the full stack
(``enqueue()``) and on Celery: the task pushes ``time.time()`` to a list the harness BLPOPs.

Gaps are log-uniform between 10 ms and 1.5 s (seeded): idle consumers back off progressively, so
the idle time decides how long a message waits; short and long idle periods are both sampled.
Percentiles are nearest-rank over all samples; the first samples (warm-up) are not counted.
"""

from __future__ import annotations

import math
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from bench.common import BenchError, Context, Worker, percentile, reap

WARM_UP = 3
GAP_RANGE = (0.010, 1.5)


def gaps(count: int, seed: int, high: float = GAP_RANGE[1]) -> list[float]:
    """Log-uniform idle gaps in seconds, reproducible."""
    rng = random.Random(seed)
    low = GAP_RANGE[0]
    return [math.exp(rng.uniform(math.log(low), math.log(high))) for _ in range(count)]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50": percentile(samples_ms, 0.50),
        "p95": percentile(samples_ms, 0.95),
        "p99": percentile(samples_ms, 0.99),
        "max": max(samples_ms),
    }


def stamp_pickup(ctx: Context, send: Callable[[str], object], samples: int, label: str, worker: Worker,
                 gap_high: float = GAP_RANGE[1]) -> list[float]:  # fmt: skip
    """Send → task start, in ms, for ``samples`` stamp tasks (after WARM_UP more) sent by ``send(key)``."""
    client = ctx.redis()
    results = []
    try:
        for index, gap in enumerate(gaps(samples + WARM_UP, seed=7, high=gap_high)):
            time.sleep(gap)
            key = f"{ctx.namespace}:stamp:{uuid.uuid4().hex}"
            before = time.time()
            send(key)
            item = client.blpop([key], timeout=30)
            if item is None:
                worker.check()
                raise BenchError(f"{label}: a stamp task did not start within 30 s\n{worker.tail()}")
            if index >= WARM_UP:
                results.append((float(item[1]) - before) * 1000)
    finally:
        client.close()
    print(f"  pick-up {label}: p50 {percentile(results, 0.5):.1f} ms", file=sys.stderr)
    return results


def start_knowledge_worker(ctx: Context, threads: int = 8) -> Worker:
    """One full-stack worker on the knowledge queue (readiness is proven by the first document)."""
    from bench.common import PYTHON

    command = [PYTHON, "manage.py", "rundramatiq", "-p", "1", "-t", str(threads), "-Q", "knowledge"]
    queue = f"{ctx.namespace}:knowledge"
    reap(queue)
    return Worker("knowledge worker", command, ctx.env(), ctx.log_dir / "knowledge.log", queue)


class EventReader:
    """Follows the namespace's lifecycle events stream from the current end."""

    def __init__(self, ctx: Context) -> None:
        self.client = ctx.redis()
        self.stream = f"{ctx.namespace}:tasks:events"
        last = self.client.xrevrange(self.stream, count=1)
        self.last_id = last[0][0] if last else b"0-0"

    def until(self, predicate: Callable[[dict[str, str]], bool], timeout: float) -> dict[str, str] | None:
        """The first new event for which ``predicate`` is true (events before it are consumed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.client.xread({self.stream: self.last_id}, count=100, block=200)
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    event = {key.decode(): value.decode() for key, value in fields.items()}
                    if predicate(event):
                        return event
        return None

    def close(self) -> None:
        self.client.close()


def document_pickup(ctx: Context, worker: Worker, samples: int, gap_high: float = GAP_RANGE[1]) -> list[float]:
    """Document save → lifecycle ``started`` event, in ms; the worker must be serving ``knowledge``."""
    from apps.knowbase.models import Document

    reader = EventReader(ctx)
    results = []
    actor = "process_document_async"
    try:
        for index, gap in enumerate(gaps(samples + WARM_UP, seed=11, high=gap_high)):
            time.sleep(gap)
            before = time.time()
            Document(title=f"latency {index}", content=f"Latency probe {index}. " * 20).save()
            timeout = 120 if index == 0 else 30  # the first one also waits for the worker to boot
            enqueued = reader.until(lambda e: e["event"] == "enqueued" and e["actor"] == actor, 10)
            if enqueued is None:
                raise BenchError("saving a document published no 'enqueued' event (is post_save connected?)")
            job = enqueued["job_id"]
            started = reader.until(lambda e, job=job: e["event"] == "started" and e["job_id"] == job, timeout)
            if started is None:
                worker.check()
                raise BenchError(f"the knowledge worker did not start job {job} within {timeout} s\n{worker.tail()}")
            finished = reader.until(lambda e, job=job: e["job_id"] == job and e["event"] != "started", 30)
            if finished is None or finished["event"] != "completed":
                raise BenchError(f"job {job} did not complete: {finished}")
            if index >= WARM_UP:
                results.append((datetime.fromisoformat(started["timestamp"]).timestamp() - before) * 1000)
    finally:
        reader.close()
    print(f"  pick-up document save: p50 {percentile(results, 0.5):.1f} ms", file=sys.stderr)
    return results
