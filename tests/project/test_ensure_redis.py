"""The run and test commands fall back to a private Redis server when REDIS_URL does not answer."""

import socket
import subprocess
import sys

import pytest
import redis

from tests.helpers import ROOT


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_redis(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/ensure_redis.py"],
        cwd=ROOT,
        env={"REDIS_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_reachable_redis_url_is_used_as_given(settings):
    url = settings.TASK_CONFIG.dramatiq.redis_url
    result = ensure_redis(url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == url


@pytest.mark.worker
def test_an_unreachable_url_starts_a_private_server_and_says_so():
    result = ensure_redis(f"redis://127.0.0.1:{closed_port()}/0")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        assert "private" in result.stderr
        # A second call finds the same server instead of starting another.
        again = ensure_redis(f"redis://127.0.0.1:{closed_port()}/0")
        assert again.stdout.strip() == url
        assert "reusing" in again.stderr
    finally:
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
