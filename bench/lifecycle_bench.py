"""Drain and enqueue rates with and without the lifecycle layer, measured in one run.

    .venv/bin/python bench/lifecycle_bench.py [--messages 10000] [--runs 3] [--database URL]

Drain: N no-op messages (one Redis INCR each) are put on a queue, then one worker process with
8 threads drains them; the rate is taken between 10 % and 90 % done (start-up excluded).
"bare" is dramatiq's own CLI on a plain RedisBroker with its default middleware; "full stack" is
``manage.py rundramatiq`` with this project's middleware (job records in the database, events,
registry). Enqueue: one thread sends N messages with ``actor.send()`` on a bare broker, then with
``apps.tasks.enqueue.enqueue`` (record written first). Each figure is the median of the runs,
with min-max. The default database is a fresh SQLite file; pass a PostgreSQL URL to use that.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--enqueue-messages", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database", default="", help="DATABASE_URL (default: a fresh SQLite file under var/bench)")
    return parser.parse_args()


def prepare_database(url: str) -> str:
    if not url:
        path = ROOT / "var" / "bench" / "bench.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = url.rsplit("/", 1)[1].split("?")[0]
        admin_url = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as connection:
            if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                connection.execute(f'CREATE DATABASE "{name}"')
    return url


def setup_django(database_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def measure_drain(start_worker: Callable[[], subprocess.Popen], fill: Callable[[str, int], None], count: int) -> float:
    from apps.tasks.broker import get_redis

    client = get_redis()
    counter = f"{os.environ['TASKS_REDIS_KEY_PREFIX']}:bench:counter:{uuid.uuid4().hex}"
    fill(counter, count)
    worker = start_worker()
    try:
        low, high = count // 10, count * 9 // 10
        deadline = time.monotonic() + 600
        started = None
        while True:
            done = int(client.get(counter) or 0)
            now = time.monotonic()
            if started is None and done >= low:
                started, started_done = now, done
            if done >= high:
                return (done - started_done) / (now - started)
            if now > deadline or worker.poll() is not None:
                raise RuntimeError(f"drain stalled at {done}/{count} (worker exit code {worker.poll()})")
            time.sleep(0.005)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        client.delete(counter)


def main() -> None:
    args = parse_args()
    database_url = prepare_database(args.database)
    setup_django(database_url)

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from apps.tasks.config import get_task_config
    from apps.tasks.enqueue import enqueue
    from apps.tasks.models import JobRecord
    from apps.tasks.services.recorder import wait_until_flushed

    config = get_task_config()
    namespace = config.dramatiq.redis_key_prefix
    bare_namespace = f"{namespace}-bare"
    broker_url = config.dramatiq.broker_url
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": broker_url, "BENCH_NAMESPACE": bare_namespace}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT, "start_new_session": True}
    threads = str(args.threads)

    def filler(target_namespace: str) -> Callable[[str, int], None]:
        plain = RedisBroker(url=broker_url, namespace=target_namespace, middleware=[])

        def fill(counter: str, count: int) -> None:
            for _ in range(count):
                message = dramatiq.Message(
                    queue_name="bench", actor_name="noop", args=(counter,), kwargs={}, options={}
                )
                plain.enqueue(message)

        return fill

    def bare_worker() -> subprocess.Popen:
        dramatiq_cli = str(Path(python).with_name("dramatiq"))
        command = [dramatiq_cli, "bench.bare_actors", "-p", "1", "-t", threads, "-Q", "bench"]
        return subprocess.Popen(command, env=env, **quiet)

    def full_worker() -> subprocess.Popen:
        command = [python, "manage.py", "rundramatiq", "-p", "1", "-t", threads, "-Q", "bench"]
        return subprocess.Popen(command, env=env, **quiet)

    results: dict[str, list[float]] = {"drain bare": [], "drain full": [], "enqueue bare": [], "enqueue helper": []}
    bare_broker = RedisBroker(url=broker_url, namespace=bare_namespace)
    bare_actor = dramatiq.Actor(
        lambda counter_key: None, broker=bare_broker, actor_name="noop", queue_name="bench", priority=0, options={}
    )
    for run in range(1, args.runs + 1):
        results["drain bare"].append(measure_drain(bare_worker, filler(bare_namespace), args.messages))
        results["drain full"].append(measure_drain(full_worker, filler(namespace), args.messages))
        JobRecord.objects.all().delete()

        n = args.enqueue_messages
        started = time.perf_counter()
        for _ in range(n):
            bare_actor.send("enqueue-bench")
        results["enqueue bare"].append(n / (time.perf_counter() - started))
        started = time.perf_counter()
        for _ in range(n):
            enqueue("noop", args=("enqueue-bench",))
        results["enqueue helper"].append(n / (time.perf_counter() - started))
        bare_broker.flush_all()
        dramatiq.get_broker().flush_all()
        wait_until_flushed()
        JobRecord.objects.all().delete()
        print(f"run {run}/{args.runs} done", file=sys.stderr)

    def figure(name: str) -> str:
        values = results[name]
        return f"{statistics.median(values):,.0f} msg/s ({min(values):,.0f}-{max(values):,.0f})"

    drain_ratio = statistics.median(results["drain full"]) / statistics.median(results["drain bare"])
    enqueue_ratio = statistics.median(results["enqueue helper"]) / statistics.median(results["enqueue bare"])
    vendor = "PostgreSQL" if "postgres" in database_url else "SQLite"
    print(f"\nLifecycle benchmark: {args.messages:,} no-op messages, 1 process x {threads} threads, {vendor}")
    print(f"median of {args.runs} runs (min-max)\n")
    print("| measure | bare dramatiq | full stack (records) | ratio |")
    print("|---|---|---|---|")
    print(f"| drain | {figure('drain bare')} | {figure('drain full')} | {drain_ratio:.0%} |")
    print(f"| enqueue, one thread | {figure('enqueue bare')} | {figure('enqueue helper')} | {enqueue_ratio:.0%} |")
    print("\nTargets: drain >= 85 % of bare; enqueue with record >= 1,200 msg/s.")
    from apps.tasks.broker import get_redis

    for pattern in (f"{namespace}:*", f"{bare_namespace}:*"):
        stale = list(get_redis().scan_iter(match=pattern, count=1000))
        if stale:
            get_redis().delete(*stale)


if __name__ == "__main__":
    main()
