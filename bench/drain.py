"""Drain rate: no-op messages per second for one worker process, per system, in one run.

    .venv/bin/python -m bench.drain [--messages 10000] [--runs 3] [--systems bare,full,...]

Systems (all with 8 threads or workers, on the same Redis): ``bare`` (dramatiq's CLI, a plain
RedisBroker, default middleware), ``full`` (``manage.py rundramatiq``: lifecycle middleware, job
records, events, registry), ``dd``/``dd0`` (django-dramatiq's AdminMiddleware with CONN_MAX_AGE 60 /
Django's default 0), ``celery`` (Celery, ``--pool threads``) and ``celery_prefork`` (2 processes).

Method: a worker is started once per system (each in its own namespace, all up together) and proven
ready by one message. Runs are interleaved — run 1 of every system, then run 2 of every system... —
so a machine that speeds up or slows down during the benchmark moves every system alike, not the
ratios. Each run, N messages carrying one counter key are built in a staging key and renamed onto
the live queue in one transaction (the queue fills instantly; filling is not measured here — see
bench.enqueue); the other workers sit idle meanwhile. The rate is taken between 10 % and 90 % of the
counter, so start-up and the tail are excluded. Between runs the harness waits until the queue is
empty and every message is acknowledged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_DATABASE,
    PYTHON,
    BenchError,
    Context,
    Worker,
    delete_namespace,
    fmt_rate,
    install_signal_handlers,
    prepare_database,
    reap,
    setup,
    stop_all,
    wait_for,
)

QUEUE = "bench"
ALL_SYSTEMS = ("bare", "full", "dd", "dd0", "celery", "celery_prefork")


@dataclass
class System:
    """One way of running the no-op: how to start its worker and how to fill its queue."""

    key: str
    label: str
    kind: str  # "dramatiq" or "celery"
    namespace: str  # the dramatiq namespace, or the kombu key prefix for Celery
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: Database tables its records go to, emptied after the system's runs.
    tables: tuple[str, ...] = ()

    def queue_key(self) -> str:
        return f"{self.namespace}:{QUEUE}" if self.kind == "dramatiq" else f"{self.namespace}{QUEUE}"


def systems(ctx: Context, threads: int = 8) -> dict[str, System]:
    """Every system the benchmark knows, keyed by name."""
    ns, t = ctx.namespace, str(threads)
    manage = [PYTHON, "manage.py", "rundramatiq", "-p", "1", "-t", t, "-Q", QUEUE]
    celery = [PYTHON, "-m", "celery", "-A", "bench.celery_app", "worker", "-Q", QUEUE, "--loglevel", "WARNING",
              "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    dd_env = {"DJANGO_SETTINGS_MODULE": "bench.django_dramatiq_settings"}
    found = [
        System("bare", f"bare dramatiq, 1 process x {t} threads", "dramatiq", f"{ns}-bare",
               [PYTHON, "-m", "dramatiq", "bench.bare_actors", "-p", "1", "-t", t, "-Q", QUEUE]),
        System("full", f"full stack (lifecycle + records), 1 x {t}", "dramatiq", ns, manage,
               tables=("tasks_jobrecord",)),
        System("dd", f"django-dramatiq AdminMiddleware, CONN_MAX_AGE=60, 1 x {t}", "dramatiq", f"{ns}-dd", manage,
               {**dd_env, "CONN_MAX_AGE": "60"}, ("django_dramatiq_task",)),
        # BENCH_NAMESPACE of its own: dd and dd0 workers are up at the same time (settings add "-dd").
        System("dd0", f"django-dramatiq AdminMiddleware, CONN_MAX_AGE=0, 1 x {t}", "dramatiq", f"{ns}-0-dd", manage,
               {**dd_env, "CONN_MAX_AGE": "0", "BENCH_NAMESPACE": f"{ns}-0"}, ("django_dramatiq_task",)),
        System("celery", f"Celery {celery_version()}, threads x {t}", "celery", f"{ns}:celery:",
               [*celery, "--pool", "threads", "--concurrency", t]),
        System("celery_prefork", f"Celery {celery_version()}, prefork x 2", "celery", f"{ns}-prefork:celery:",
               [*celery, "--pool", "prefork", "--concurrency", "2"], {"BENCH_NAMESPACE": f"{ns}-prefork"}),
    ]  # fmt: skip
    return {system.key: system for system in found}


def celery_version() -> str:
    try:
        from importlib.metadata import version

        return version("celery")
    except Exception:
        return "(not installed)"


# --- filling queues -----------------------------------------------------------------------------


def stage(ctx: Context, system: System, actor: str, args: tuple, count: int) -> None:
    """Put ``count`` messages ``actor(*args)`` on the system's queue at once (built aside, then renamed)."""
    if system.kind == "celery":
        return _stage_celery(ctx, system, actor, args, count)
    import dramatiq

    client = ctx.redis()
    staging = f"{ctx.namespace}-staging-{uuid.uuid4().hex[:8]}"
    staged_queue, staged_messages = f"{staging}:{QUEUE}", f"{staging}:{QUEUE}.msgs"
    try:
        pipeline = client.pipeline(transaction=False)
        for start in range(0, count, 1000):
            ids, data = [], {}
            for _ in range(min(1000, count - start)):
                redis_id = str(uuid.uuid4())
                message = dramatiq.Message(
                    queue_name=QUEUE, actor_name=actor, args=args, kwargs={}, options={"redis_message_id": redis_id}
                )
                ids.append(redis_id)
                data[redis_id] = message.encode()
            pipeline.hset(staged_messages, mapping=data)
            pipeline.rpush(staged_queue, *ids)
            pipeline.execute()
        _swap_in(client, [(staged_queue, system.queue_key()), (staged_messages, f"{system.queue_key()}.msgs")],
                 _wake_key(ctx, system))  # fmt: skip
    finally:
        client.delete(staged_queue, staged_messages)
        client.close()


def _stage_celery(ctx: Context, system: System, actor: str, args: tuple, count: int) -> None:
    """Celery: publish one real message to a template queue, then push ``count`` copies with fresh ids."""
    from bench import celery_app

    task = {"noop": celery_app.noop, "stamp": celery_app.stamp}[actor]
    template_queue = f"template-{uuid.uuid4().hex[:8]}"
    task.apply_async(args=args, queue=template_queue)
    client = ctx.redis(3)
    staged = f"{system.namespace}staging-{uuid.uuid4().hex[:8]}"
    try:
        raw = client.lpop(f"{celery_app.KEY_PREFIX}{template_queue}")  # published under this process's prefix
        if raw is None:
            raise BenchError("Celery did not publish the template message where expected")
        template = json.loads(raw)
        template["properties"]["delivery_info"]["routing_key"] = QUEUE
        pipeline = client.pipeline(transaction=False)
        for start in range(0, count, 1000):
            batch = []
            for _ in range(min(1000, count - start)):
                task_id = str(uuid.uuid4())
                template["headers"]["id"] = template["headers"]["root_id"] = task_id
                template["properties"]["correlation_id"] = task_id
                template["properties"]["delivery_tag"] = str(uuid.uuid4())
                batch.append(json.dumps(template))
            pipeline.lpush(staged, *batch)  # kombu LPUSHes and BRPOPs: the first pushed runs first
            pipeline.execute()
        _swap_in(client, [(staged, system.queue_key())])
    finally:
        for key in client.scan_iter(match=f"{celery_app.KEY_PREFIX}*{template_queue}*"):
            client.delete(key)
        client.delete(staged)
        client.close()


def _wake_key(ctx: Context, system: System) -> str | None:
    """The project's broker wakes idle consumers with a token on a list at each enqueue; staging does too."""
    if system.namespace != ctx.namespace:
        return None
    import dramatiq

    wake_key = getattr(dramatiq.get_broker(), "wake_key", None)
    return wake_key(QUEUE) if wake_key is not None else None


def _swap_in(client, renames: list[tuple[str, str]], wake_key: str | None = None) -> None:
    """Rename staged keys onto the live ones in one transaction (the live ones must be empty); with
    ``wake_key``, push a wake-up token as the project's enqueue does."""
    live = [target for _, target in renames]
    if client.exists(*live):
        raise BenchError(f"the queue is not empty before a run: {', '.join(live)}")
    pipeline = client.pipeline(transaction=True)
    for source, target in renames:
        pipeline.rename(source, target)
    if wake_key is not None:
        pipeline.lpush(wake_key, 1)
    pipeline.execute()


def idle(ctx: Context, system: System) -> bool:
    """Nothing waiting, nothing in flight (dramatiq deletes a message's data when it is acknowledged)."""
    if system.kind == "dramatiq":
        client = ctx.redis()
        keys = [system.queue_key(), f"{system.queue_key()}.msgs"]
    else:
        client = ctx.redis(3)
        keys = [system.queue_key(), f"{system.namespace}unacked"]
    try:
        return not client.exists(*keys)
    finally:
        client.close()


# --- workers and runs ---------------------------------------------------------------------------


def start_worker(ctx: Context, system: System, name: str | None = None) -> tuple[Worker, float]:
    """Start the system's worker; return it once it has run one message, with the seconds that took."""
    name = name or f"{system.key} worker"
    reap(system.queue_key())
    started = time.monotonic()
    worker = Worker(name, system.command, ctx.env(**system.env), ctx.log_dir / f"{system.key}.log", system.queue_key())
    counter = f"{ctx.namespace}:ready:{uuid.uuid4().hex}"
    client = ctx.redis()
    try:
        wait_for(lambda: idle(ctx, system), 30, f"{system.key}: an empty queue before start-up")
        stage(ctx, system, "noop", (counter,), 1)
        wait_for(lambda: client.get(counter) is not None, 120, f"{name} to run its first message", 0.02, worker)
        wait_for(lambda: idle(ctx, system), 30, f"{name} to acknowledge its first message", 0.02, worker)
    except BaseException:
        worker.stop()
        raise
    finally:
        client.delete(counter)
        client.close()
    return worker, time.monotonic() - started


def measure_drain(ctx: Context, system: System, worker: Worker, count: int) -> float:
    """One run: ``count`` messages at once; the rate between 10 % and 90 % done."""
    client = ctx.redis()
    counter = f"{ctx.namespace}:counter:{uuid.uuid4().hex}"
    try:
        wait_for(lambda: idle(ctx, system), 60, f"{system.key}: the previous run to be acknowledged", 0.02, worker)
        stage(ctx, system, "noop", (counter,), count)
        low, high = count // 10, count * 9 // 10
        deadline = time.monotonic() + 60 + count / 20  # no system here is slower than 20 msg/s
        started = started_done = None
        while True:
            done = int(client.get(counter) or 0)
            now = time.monotonic()
            if started is None and done >= low:
                started, started_done = now, done
            if done >= high and started is not None and now > started:
                rate = (done - started_done) / (now - started)
                break
            if now > deadline:
                raise BenchError(f"{system.key}: drain stalled at {done}/{count}\n{worker.tail()}")
            worker.check()
            time.sleep(0.005)
        wait_for(lambda: int(client.get(counter) or 0) >= count, 60 + count / 20, f"{system.key}: the last messages",
                 0.02, worker)  # fmt: skip
        return rate
    finally:
        client.delete(counter)
        client.close()


def empty_tables(tables: tuple[str, ...]) -> None:
    """Empty the record tables systems filled (dedicated benchmark database; after their workers stopped)."""
    if not tables:
        return
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)}")


def run_systems(
    ctx: Context, chosen: list[System], count: int, runs: int, after: Callable[[System, Worker], object] | None = None
) -> dict[str, dict | Exception]:
    """Start every system's worker, drain ``runs`` rounds (one run of each system per round), call
    ``after(system, worker)`` for each while the workers are up, stop them all. Per system: its
    rates, start-up time and ``after``'s answer, or the exception that put it out of the running."""
    outcomes: dict[str, dict | Exception] = {}
    workers: dict[str, Worker] = {}
    try:
        for system in chosen:
            try:
                workers[system.key], startup = start_worker(ctx, system)
                outcomes[system.key] = {"rates": [], "startup_s": startup, "extra": None}
            except Exception as exc:
                outcomes[system.key] = exc
        for run in range(1, runs + 1):
            for system in chosen:
                outcome = outcomes[system.key]
                if isinstance(outcome, Exception):
                    continue
                try:
                    outcome["rates"].append(measure_drain(ctx, system, workers[system.key], count))
                except Exception as exc:
                    outcomes[system.key] = exc
                    continue
                print(f"  drain {system.key} run {run}/{runs}: {outcome['rates'][-1]:,.0f} msg/s", file=sys.stderr)
        for system in chosen:
            outcome = outcomes[system.key]
            if after is not None and not isinstance(outcome, Exception):
                try:
                    outcome["extra"] = after(system, workers[system.key])
                except Exception as exc:
                    outcomes[system.key] = exc
    finally:
        for worker in workers.values():
            worker.stop(wait=False)
    return outcomes


def main() -> None:
    """Stand-alone: drain rates of the chosen systems on the bench database."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--systems", default="bare,full,dd,celery")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args()
    install_signal_handlers()  # a SIGTERM stops the workers too
    ctx = Context(quick=False, runs=args.runs, database_url=prepare_database(args.database))
    setup(ctx)
    chosen = systems(ctx, args.threads)
    keys = args.systems.split(",")
    try:
        outcomes = run_systems(ctx, [chosen[key] for key in keys], args.messages, args.runs)
        for key in keys:
            outcome = outcomes[key]
            print(f"{chosen[key].label}: {outcome if isinstance(outcome, Exception) else fmt_rate(outcome['rates'])}")
    finally:
        stop_all()
        empty_tables(tuple({table for key in keys for table in chosen[key].tables}))
        delete_namespace(ctx)


if __name__ == "__main__":
    main()
