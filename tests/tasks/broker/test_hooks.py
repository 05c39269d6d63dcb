"""The broker emits each signal only to the middleware implementing it, with dramatiq's semantics."""

from __future__ import annotations

import logging

import pytest
from dramatiq.middleware import Middleware, SkipMessage

from apps.tasks.broker import RedisBroker, get_redis


class Recording(Middleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def before_process_message(self, broker, message) -> None:
        self.calls.append(f"before {self.name}")

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self.calls.append(f"after {self.name}")


class Failing(Middleware):
    def before_process_message(self, broker, message) -> None:
        raise RuntimeError("broken middleware")


class Skipping(Middleware):
    def before_process_message(self, broker, message) -> None:
        raise SkipMessage()


def make_broker(*middleware: Middleware) -> RedisBroker:
    return RedisBroker(client=get_redis(), namespace="hooks-test", middleware=list(middleware))


def test_hooks_run_in_dramatiq_order_before_forward_after_reversed():
    calls: list[str] = []
    broker = make_broker(Recording("a", calls), Middleware(), Recording("b", calls))
    broker.emit_before("process_message", None)
    broker.emit_after("process_message", None, result=None)
    assert calls == ["before a", "before b", "after b", "after a"]
    broker.emit_before("ack", None)  # nobody implements it: nothing runs, nothing fails
    assert len(calls) == 4


def test_middleware_added_or_removed_later_is_taken_into_account():
    calls: list[str] = []
    first = Recording("a", calls)
    broker = make_broker(first)
    broker.emit_before("process_message", None)
    broker.add_middleware(Recording("b", calls))
    broker.emit_before("process_message", None)
    broker.middleware.remove(first)  # even behind add_middleware's back
    broker.emit_before("process_message", None)
    assert calls == ["before a", "before a", "before b", "before b"]


def test_a_hook_set_on_an_instance_runs():
    calls: list[str] = []
    plain = Middleware()
    plain.before_enqueue = lambda broker, message, delay: calls.append("instance hook")
    make_broker(plain).emit_before("enqueue", None, None)
    assert calls == ["instance hook"]


def test_a_failing_hook_is_logged_and_the_others_still_run(caplog):
    calls: list[str] = []
    broker = make_broker(Failing(), Recording("a", calls))
    with caplog.at_level(logging.CRITICAL):
        broker.emit_before("process_message", None)
    assert calls == ["before a"]
    assert any("Unexpected failure in before_process_message" in record.getMessage() for record in caplog.records)


def test_a_middleware_error_such_as_skip_message_propagates():
    calls: list[str] = []
    broker = make_broker(Skipping(), Recording("a", calls))
    with pytest.raises(SkipMessage):
        broker.emit_before("process_message", None)
    assert calls == []
