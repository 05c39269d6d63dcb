"""supervisord runs the deploy/supervisor program group on this machine: worker RUNNING and
processing a job, web answering, scheduler up; a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import xmlrpc.client
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import ROOT, free_port, process_env, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

GROUP_FILE = ROOT / "deploy" / "supervisor" / "django-tasks.conf"
SHUTDOWN_TIMEOUT_MS = 15_000


PROBE_TOKEN = "supervisor-probe-token"


def write_env_file(path: Path, web_port: int) -> None:
    """The settings file the programs source: this test run's database, Redis namespace and URL."""
    env = process_env()
    names = ["DJANGO_SETTINGS_MODULE", "TEST_WORKER_DATABASE_NAME", "TASKS_REDIS_KEY_PREFIX", "CACHE_KEY_PREFIX"]
    names += [name for name in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY") if name in env]
    values = {name: env[name] for name in names}
    values.update(
        DRAMATIQ_PROCESSES="1",
        DRAMATIQ_THREADS="2",
        TASKS_WORKER_SHUTDOWN_TIMEOUT_MS=str(SHUTDOWN_TIMEOUT_MS),
        WEB_BIND=f"127.0.0.1:{web_port}",
        WEB_CONCURRENCY="1",
        ALLOWED_HOSTS="127.0.0.1",
        PYTHONUNBUFFERED="1",
        TASKS_METRICS_TOKEN=PROBE_TOKEN,  # the full health report wants it (anonymous callers get the status)
    )
    path.write_text("".join(f"{name}='{value}'\n" for name, value in values.items()))


def write_supervisord_conf(directory: Path, port: int) -> Path:
    conf = directory / "supervisord.conf"
    conf.write_text(
        f"""[supervisord]
nodaemon=true
logfile={directory}/supervisord.log
pidfile={directory}/supervisord.pid
childlogdir={directory}
user=root

[inet_http_server]
port=127.0.0.1:{port}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=http://127.0.0.1:{port}

[include]
files={GROUP_FILE}
"""
    )
    if os.geteuid() != 0:
        conf.write_text(conf.read_text().replace("user=root\n", ""))
    return conf


def state(server, name: str) -> dict:
    return server.supervisor.getProcessInfo(f"django-tasks:{name}")


def test_supervisord_runs_the_group_and_stops_the_worker_cleanly(tmp_path, broker_redis, clean_queues):
    from tests.testapp.tasks import record_effect

    rpc_port, web_port = free_port(), free_port()
    write_env_file(tmp_path / "tasks.env", web_port)
    conf = write_supervisord_conf(tmp_path, rpc_port)
    env = {
        **os.environ,
        "TASKS_APP_DIR": str(ROOT),
        "TASKS_VENV": sys.prefix,
        "TASKS_ENV_FILE": str(tmp_path / "tasks.env"),
        "TASKS_LOG_DIR": str(tmp_path),
    }
    supervisord = subprocess.Popen(
        [str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)],
        cwd=tmp_path,
        env=env,
        stdout=open(tmp_path / "supervisord.out", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{rpc_port}/RPC2")
    children: set[int] = set()

    def logs() -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in sorted(tmp_path.glob("*.log"))
        )

    try:

        def running():
            try:
                infos = {info["name"]: info for info in server.supervisor.getAllProcessInfo()}
            except (ConnectionRefusedError, OSError):
                return None
            children.update(info["pid"] for info in infos.values() if info["pid"])
            return infos if all(info["statename"] == "RUNNING" for info in infos.values()) and infos else None

        infos = wait_for(running, timeout=120, interval=0.5, message="worker, web and scheduler RUNNING")
        assert set(infos) == {"worker", "web", "scheduler"}, logs()

        # The worker processes a job.
        key = f"{settings.TASK_CONFIG.dramatiq.redis_key_prefix}:test:supervisor:{uuid.uuid4().hex}"
        record_effect.send(key, "done")
        assert wait_for(lambda: broker_redis.lrange(key, 0, -1), timeout=60, message="the worker's effect") == [b"done"]
        # The web app answers on its loopback port with the worker listed.
        try:
            probe = urllib.request.Request(
                f"http://127.0.0.1:{web_port}/health/tasks/", headers={"Authorization": f"Bearer {PROBE_TOKEN}"}
            )
            with urllib.request.urlopen(probe, timeout=30) as response:  # noqa: S310 (http on loopback)
                health = json.loads(response.read())
        except urllib.error.HTTPError as degraded:  # 503 is still a report
            assert degraded.code == 503, logs()
            health = json.loads(degraded.read())
        assert health["redis_connection"]["ok"] is True
        assert infos["worker"]["pid"] in {worker["ppid"] for worker in health["workers"]}

        # A clean stop: SIGTERM, the worker shuts down gracefully, exits 0, well within stopwaitsecs.
        started = time.monotonic()
        assert server.supervisor.stopProcess("django-tasks:worker", True) is True
        took = time.monotonic() - started
        info = state(server, "worker")
        assert info["statename"] == "STOPPED", logs()
        assert info["exitstatus"] == 0, logs()
        assert "Worker has been shut down" in (tmp_path / "worker.log").read_text(), logs()
        assert took < SHUTDOWN_TIMEOUT_MS / 1000, f"stopping took {took:.1f}s"
        print(f"\nsupervisor stopped the idle worker in {took:.2f}s")

        assert server.supervisor.stopProcessGroup("django-tasks", True)
        assert {info["statename"] for info in server.supervisor.getAllProcessInfo()} == {"STOPPED"}
        server.supervisor.shutdown()
        assert supervisord.wait(timeout=60) == 0
    finally:
        if supervisord.poll() is None:
            os.killpg(supervisord.pid, signal.SIGTERM)
            try:
                supervisord.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(supervisord.pid, signal.SIGKILL)
        for pid in children:  # programs run in process groups of their own
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
