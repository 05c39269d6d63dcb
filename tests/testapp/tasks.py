"""Actors used by the tests; discovered like any app's tasks module."""

import dramatiq

from apps.tasks.broker import get_redis


@dramatiq.actor(queue_name="default", max_retries=0)
def record_effect(key: str, value: str) -> None:
    get_redis().rpush(key, value)


# --- lifecycle ------------------------------------------------------------------------------

from apps.tasks.decorators import task  # noqa: E402
from apps.tasks.errors import PermanentError, TransientError  # noqa: E402


@task(queue_name="default")
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="default", max_retries=3, min_backoff=50, max_backoff=400)
def flaky(key: str, failures: int) -> str:
    """Fail with a transient error ``failures`` times, then succeed."""
    seen = get_redis().incr(key)
    if seen <= failures:
        raise TransientError(f"transient failure {seen} of {failures}")
    return "ok"


@task(queue_name="default", max_retries=3, min_backoff=50)
def broken(reason: str) -> None:
    raise PermanentError(reason)


@task(queue_name="default", max_retries=0)
def leaks_secrets(url: str, password: str, api_token: str, tokenizer: str) -> None:
    """Fail the way a misconfigured client does: the URL with its password in the error."""
    raise ConnectionError(f"Error 111 connecting to {url}. Connection refused.")


@task(queue_name="default", max_retries=3, min_backoff=50)
def bad_value(value: str) -> None:
    raise ValueError(f"cannot use {value!r}")


@task(queue_name="default", max_retries=0)
def sleepy_guard(key: str) -> None:
    """Fails until the key exists (used to make dead letters that can be requeued)."""
    if not get_redis().exists(key):
        raise PermanentError(f"{key} missing")


# --- crash recovery -------------------------------------------------------------------------

import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402


@task(queue_name="default", max_retries=0)
def take_a_moment(seconds: float) -> None:
    """Work that needs no Redis: its record alone tells that it ran (Redis restart tests)."""
    time.sleep(seconds)


@task(queue_name="default", max_retries=0)
def mark_slowly(key: str, number: int, seconds: float = 0.01) -> None:
    """Take a moment, then record ``number`` in a set: idempotent, so a redelivery cannot double it."""
    time.sleep(seconds)
    get_redis().sadd(key, number)


@task(queue_name="default", max_retries=0)
def count_runs(key: str, number: int, seconds: float = 0.01) -> None:
    """Count each start of ``number`` (hash ``<key>:starts``), take a moment, then note it done
    (set ``<key>:done``): crash tests tell a job run twice from one finished once."""
    get_redis().hincrby(f"{key}:starts", number, 1)
    time.sleep(seconds)
    get_redis().sadd(f"{key}:done", number)


@task(queue_name="default", max_retries=0, unique_key=lambda account, seconds=0.0: f"account-{account}")
def sync_account(account: int, seconds: float = 0.0) -> int:
    """One sync per account at a time (its unique key); takes ``seconds``."""
    time.sleep(seconds)
    return account


@task(queue_name="default", max_retries=0)
def kill_own_worker(key: str) -> None:
    """Count the delivery, then die the way an OOM kill does."""
    get_redis().incr(key)
    os.kill(os.getpid(), signal.SIGKILL)


@task(queue_name="low")
def low_noop() -> None:
    """Never consumed in the tests: it stays on the low queue to be counted."""


@task(queue_name="default", max_retries=0)
def frozen_objects() -> int:
    """How many objects the worker moved out of the collector's generations at boot."""
    import gc

    return gc.get_freeze_count()


@task(queue_name="default", max_retries=3)
def work_until_aborted(key: str, seconds: float = 60.0) -> str:
    """Say it started, then work in short steps: an abort interrupts it between two of them."""
    get_redis().set(key, "started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    get_redis().set(key, "finished")
    return "finished"


@task(queue_name="default", max_retries=3)
def stop_at_check_point(key: str, seconds: float = 60.0) -> str:
    """Check for an abort request between steps and stop cleanly when one comes."""
    from dramatiq_abort import abort_requested

    get_redis().set(key, "started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if abort_requested() is not None:
            get_redis().set(key, "cleaned up")
            return "stopped early"
        time.sleep(0.02)
    return "finished"


@task(queue_name="default", max_retries=0, concurrency=2)
def one_of_two(key: str, number: int, seconds: float = 0.2) -> None:
    """Note when it starts and ends: at most two of these may overlap, in any number of workers.
    Only its first delivery takes its time (a job run again after a crash is quick)."""
    client = get_redis()
    client.rpush(key, f"start {number} {time.time():.6f}")
    if client.set(f"{key}:{number}:took-its-time", 1, nx=True, ex=600):
        time.sleep(seconds)
    client.rpush(key, f"end {number} {time.time():.6f}")


@task(queue_name="default", max_retries=0, rate_limit="3/s")
def three_a_second(key: str, number: int) -> None:
    get_redis().rpush(key, f"{time.time():.6f}")
