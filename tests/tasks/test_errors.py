"""The retry predicate tells transient errors from permanent ones (pure logic, no broker)."""

import pytest
import redis
from django import db

from apps.tasks.errors import PermanentError, TransientError, is_permanent, is_transient, retry_predicate


class BothKinds(TransientError, ValueError):
    pass


@pytest.mark.parametrize(
    "exception",
    [
        TransientError("later"),
        ConnectionResetError(),
        TimeoutError(),
        TimeoutError(),
        redis.ConnectionError(),
        redis.TimeoutError(),
        db.OperationalError("server closed the connection"),
        db.InterfaceError("connection already closed"),
        BothKinds("transient wins"),
        RuntimeError("unknown kinds retry too"),
    ],
)
def test_transient_and_unknown_errors_retry_until_the_limit(exception):
    should_retry = retry_predicate(max_retries=3)
    assert [should_retry(retries, exception) for retries in range(5)] == [True, True, True, False, False]


@pytest.mark.parametrize("exception", [PermanentError("no"), ValueError(), KeyError("k"), TypeError()])
def test_permanent_errors_never_retry(exception):
    assert is_permanent(exception)
    assert not retry_predicate(max_retries=5)(0, exception)


def test_classification():
    assert is_transient(redis.ConnectionError())
    assert not is_transient(ValueError())
    assert not is_permanent(BothKinds())
    assert not is_permanent(RuntimeError())


def test_task_decorator_defaults_and_overrides():
    from apps.tasks.decorators import task

    @task
    def plain() -> None: ...

    @task(queue_name="high", max_retries=1, min_backoff=10, max_backoff=20, time_limit=1000)
    def tuned() -> None: ...

    assert plain.queue_name == "default"
    assert plain.options["max_retries"] == 5
    assert plain.options["min_backoff"] == 1_000
    assert plain.options["max_backoff"] == 300_000
    assert plain.options["time_limit"] == 600_000
    assert plain.options["retry_when"](4, RuntimeError()) and not plain.options["retry_when"](5, RuntimeError())
    assert tuned.queue_name == "high"
    assert (tuned.options["max_retries"], tuned.options["min_backoff"], tuned.options["max_backoff"]) == (1, 10, 20)
    assert tuned.options["time_limit"] == 1000


def test_task_decorator_refuses_an_unknown_queue():
    from apps.tasks.decorators import task

    with pytest.raises(ValueError, match="unknown queue 'nope'; configured queues: default, high, low, knowledge"):

        @task(queue_name="nope")
        def lost() -> None: ...
