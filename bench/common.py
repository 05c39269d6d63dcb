"""Shared plumbing of the benchmarks: the run's context, worker subprocesses, statistics, clean-up.

Every worker runs in its own process group and is registered here, so one ``stop_all()`` (called
from ``finally`` and at exit) stops them all, even after an error. Every Redis key a run creates
starts with the run's namespace, on the broker, cache, session and Celery databases alike, so
``delete_namespace`` removes them all.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
DEFAULT_DATABASE = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench")
#: Redis databases: 0 cache, 1 sessions, 2 dramatiq broker (the project's layout), 3 Celery's broker.
CACHE_DB, SESSION_DB, BROKER_DB, CELERY_DB = 0, 1, 2, 3
PYTHON = sys.executable


class BenchError(RuntimeError):
    """A measurement could not run (a worker did not start, a wait timed out); the message says why."""


# --- statistics ---------------------------------------------------------------------------------


def median_spread(values: Iterable[float]) -> tuple[float, float, float]:
    """(median, min, max) of several runs."""
    values = list(values)
    return statistics.median(values), min(values), max(values)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def fmt_rate(values: list[float]) -> str:
    """``1,234 (1,200-1,300)``: the median of the runs with its spread; one run has no spread."""
    middle, low, high = median_spread(values)
    return f"{middle:,.0f}" if len(values) == 1 else f"{middle:,.0f} ({low:,.0f}-{high:,.0f})"


# --- databases ----------------------------------------------------------------------------------


def prepare_database(url: str) -> str:
    """Create the PostgreSQL database named by ``url`` if missing (an empty URL: a fresh SQLite file)."""
    if not url:
        path = VAR / "bench.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = database_name(url)
        admin_url = url.rsplit("/", 1)[0] + "/postgres"
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as connection:
                if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    connection.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            raise BenchError(f"PostgreSQL at {mask(url)} is not usable: {exc}".strip()) from exc
    return url


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def with_database_name(url: str, name: str) -> str:
    base, _, rest = url.rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# --- the run's context --------------------------------------------------------------------------


@dataclass
class Context:
    """Where a run measures and what it may touch: one namespace for every Redis key it creates."""

    quick: bool
    runs: int
    database_url: str
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    namespace: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    log_dir: Path = VAR / "logs"

    def redis_db_url(self, db: int) -> str:
        from apps.tasks.redis_urls import with_db

        return with_db(self.redis_url, db)

    @property
    def broker_url(self) -> str:
        return self.redis_db_url(BROKER_DB)

    def redis(self, db: int = BROKER_DB):
        import redis

        return redis.Redis.from_url(self.redis_db_url(db), socket_timeout=30, socket_connect_timeout=10)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every subprocess: the project on the bench database, in the namespace."""
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TASKS_REDIS_KEY_PREFIX": self.namespace,
            "CACHE_KEY_PREFIX": self.namespace,
            "TASKS_EXTRA_QUEUES": "bench",
            "TASKS_WORKER_SHUTDOWN_TIMEOUT_MS": "10000",
            "TASKS_STATE_DIR": str(VAR / "run"),
            "LOG_LEVEL": "WARNING",
            "SECRET_KEY": "bench-only-secret-key",
            "BENCH_NAMESPACE": self.namespace,
            "BENCH_REDIS_URL": self.broker_url,
            "BENCH_CELERY_URL": self.redis_db_url(CELERY_DB),
            **extra,
        }


def delete_namespace(ctx: Context) -> int:
    """Delete every key of the run (``<namespace>*``) on the databases it uses, and the workers' state
    folders (``TASKS_STATE_DIR/<namespace>``); the count of keys deleted."""
    import shutil

    for path in (VAR / "run").glob(f"{ctx.namespace}*"):
        shutil.rmtree(path, ignore_errors=True)
    deleted = 0
    for db in (CACHE_DB, SESSION_DB, BROKER_DB, CELERY_DB):
        client = ctx.redis(db)
        try:
            keys = list(client.scan_iter(match=f"{ctx.namespace}*", count=1000))
            for start in range(0, len(keys), 500):
                deleted += client.delete(*keys[start : start + 500])
        finally:
            client.close()
    return deleted


# --- subprocesses -------------------------------------------------------------------------------


class Worker:
    """A subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path, queue: str = "") -> None:
        self.name = name
        #: The Redis key of the queue it consumes: a worker shutting down must be gone before another starts on it.
        self.queue = queue
        self.log_path = log_path
        self.terminated = False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        _running.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def check(self) -> None:
        """Raise, with the end of its log, if the process has exited."""
        if not self.alive():
            raise BenchError(f"{self.name} exited with code {self.process.returncode}\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(f"    | {line}" for line in text) + f"\n    (log: {self.log_path})"

    def children(self) -> list[int]:
        """Direct child pids (the worker processes a dramatiq or Celery main process forks)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
            return [int(pid) for pid in text.split()]
        except OSError:
            pids = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.pid:
                        pids.append(int(stat.parent.name))
            return pids

    def terminate(self) -> None:
        """SIGTERM to the main process, once: dramatiq and Celery forward it to their children (a second
        SIGTERM makes a dramatiq worker process exit at once, without acknowledging what it ran)."""
        if not self.terminated and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self, timeout: float = 20.0, wait: bool = True) -> None:
        """SIGTERM (see ``terminate``); SIGKILL to the whole group after ``timeout``. Without ``wait``,
        the shutdown (seconds for an idle dramatiq worker) overlaps what comes next; ``stop_all`` waits."""
        self.terminate()
        if not wait:
            return
        if self in _running:
            _running.remove(self)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # Children the main process left behind (it exited first) are in the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


_running: list[Worker] = []


def reap(queue: str) -> None:
    """Wait for workers told to stop that consume ``queue``: a new worker on it must not share it."""
    for worker in list(_running):
        if worker.terminated and worker.queue == queue:
            worker.stop()


def stop_all() -> None:
    """Stop every worker still running: SIGTERM to all first, then wait, so stops overlap."""
    workers = list(_running)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.stop()


atexit.register(stop_all)


def run_json(command: list[str], env: dict[str, str], timeout: float, what: str) -> Any:
    """Run a helper subprocess (own process group) that prints one JSON document last; return it."""
    import json

    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise BenchError(f"{what}: no answer within {timeout:.0f} s") from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    if process.returncode != 0:
        raise BenchError(f"{what} failed (exit {process.returncode}):\n{stderr[-3000:]}")
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"{what}: no JSON result in its output:\n{stdout[-1000:]}\n{stderr[-2000:]}") from None


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.01,
             worker: Worker | None = None) -> None:  # fmt: skip
    """Poll ``condition`` until true; raise BenchError after ``timeout`` seconds or if ``worker`` dies."""
    deadline = time.monotonic() + timeout
    while not condition():
        if worker is not None:
            worker.check()
        if time.monotonic() > deadline:
            suffix = f"\n{worker.tail()}" if worker is not None else ""
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}{suffix}")
        time.sleep(interval)


def settle_database(timeout: float = 120.0) -> None:
    """Let PostgreSQL finish the work earlier sections left behind (a checkpoint, vacuum and analyze
    of the tables they filled, no autovacuum worker still running), so that pick-up latency is
    taken, as specified, with an idle system rather than during the clean-up of a 50,000-task run.
    CHECKPOINT needs a superuser (or pg_checkpoint); without one it is skipped."""
    from django.db import connection

    from apps.knowbase.models import Document, DocumentChunk
    from apps.tasks.models import JobRecord

    with connection.cursor() as cursor:
        for model in (JobRecord, Document, DocumentChunk):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")
        try:
            cursor.execute("CHECKPOINT")
        except Exception as exc:  # not allowed for this user: the checkpointer spreads it out anyway
            print(f"  settle: no CHECKPOINT ({str(exc).strip()})", file=sys.stderr)

    def autovacuum_idle() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
            return cursor.fetchone()[0] == 0

    wait_for(autovacuum_idle, timeout, "autovacuum workers to finish", interval=0.2)


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def install_signal_handlers() -> None:
    """SIGTERM (a CI time-out) unwinds like Ctrl-C, so ``finally`` blocks stop the workers."""

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def setup(ctx: Context) -> None:
    """The database (created, migrated), Redis reachable, Django configured in this process."""
    import redis

    ctx.database_url = prepare_database(ctx.database_url)
    os.environ.update(ctx.env())
    try:
        ctx.redis().ping()
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {mask(ctx.broker_url)} does not answer: {exc}") from exc
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # the project's apps and django_dramatiq's tables
