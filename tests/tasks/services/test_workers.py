"""Whether a process named by ``process_identity`` is certainly gone (used to take back claims)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import dramatiq
import pytest

from apps.tasks import keys
from apps.tasks.services import workers


def test_this_host_judges_by_pid():
    here = socket.gethostname()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert workers.process_is_gone(f"{here}:{int(ended.stdout)}") is True
    assert workers.process_is_gone(f"{here}:{os.getpid()}@any") is False
    assert workers.process_identity().startswith(f"{here}:{os.getpid()}")


@pytest.mark.parametrize("identity", ["", "garbage", "other-host:12", "other-host:x@w"])
def test_what_is_not_known_to_be_gone_is_not_gone(identity, broker_redis):
    assert workers.process_is_gone(identity) is False


def test_another_hosts_worker_is_gone_once_its_heartbeat_expired(broker_redis, settings):
    registry = keys.workers(dramatiq.get_broker().namespace)
    timeout_ms = workers.heartbeat_timeout_ms()
    now_ms = time.time() * 1000
    broker_redis.zadd(registry, {"w-live": now_ms, "w-stale": now_ms - timeout_ms - 1000})
    try:
        assert workers.process_is_gone("other-host:12@w-live") is False
        assert workers.process_is_gone("other-host:12@w-stale") is True
        assert workers.process_is_gone("other-host:12@w-never-registered") is True
    finally:
        broker_redis.zrem(registry, "w-live", "w-stale")
