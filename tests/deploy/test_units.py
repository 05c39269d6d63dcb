"""The process-manager files: systemd units that systemd-analyze accepts, a supervisor group, a
Procfile and an .env.example that say the same things as the code."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys

import pytest
from django.core.management import get_commands

from apps.tasks.config import DramatiqConfig
from tests.helpers import ROOT

SYSTEMD = ROOT / "deploy" / "systemd"
UNITS = sorted(path.name for path in SYSTEMD.iterdir() if path.suffix in (".service", ".target"))
SERVICES = [name for name in UNITS if name.endswith(".service")]
#: Where the units expect the code and its virtualenv; the verify test relocates them to this checkout.
APP_DIR, VENV_DIR = "/opt/django-tasks/app", "/opt/django-tasks/venv"
SHUTDOWN_TIMEOUT_S = DramatiqConfig().worker_shutdown_timeout_ms / 1000
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes"}


def unit_settings(name: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (systemd allows a key several times)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path:
        return path
    installable = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if installable:
        pytest.skip("systemd-analyze is missing; `apt-get install systemd` provides it (tests install nothing)")
    pytest.fail(
        "systemd-analyze is missing and cannot be installed here (not root, or no apt-get): cannot verify units"
    )


def test_there_are_web_worker_template_and_scheduler_units():
    assert set(UNITS) >= {
        "django-tasks-web.service",
        "django-tasks-worker@.service",
        "django-tasks-scheduler.service",
        "django-tasks.target",
    }


def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    analyze = systemd_analyze()
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace(f"{VENV_DIR}/", f"{sys.prefix}/").replace(APP_DIR, str(ROOT))
        (tmp_path / name).write_text(text)
    for name in UNITS:
        result = subprocess.run(
            [analyze, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True, timeout=120
        )
        # verify exits 0 on mere warnings (an unknown key, a bad value): any output is a failure here.
        output = (result.stdout + result.stderr).strip()
        assert result.returncode == 0 and not output, f"{name}:\n{output}"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_restarts_reads_the_env_file_and_stops_gracefully(name):
    service = unit_settings(name)["Service"]
    assert service["Restart"] == ["always"]
    assert "/etc/django-tasks/django-tasks.env" in service["EnvironmentFile"]
    assert service["KillSignal"] == ["SIGTERM"]
    # Only the main process gets SIGTERM; a dramatiq worker process signalled twice dies at once.
    assert service["KillMode"] == ["mixed"]
    for key, expected in HARDENING.items():
        assert service[key] == [expected], f"{name}: {key}"
    assert service["ExecStart"][0].startswith(f"{VENV_DIR}/bin/")
    assert service["WorkingDirectory"] == [APP_DIR]


def test_the_worker_template_waits_longer_than_the_shutdown_timeout():
    service = unit_settings("django-tasks-worker@.service")["Service"]
    assert int(service["TimeoutStopSec"][0]) > SHUTDOWN_TIMEOUT_S + 10
    assert service["ExecStart"] == [f"{VENV_DIR}/bin/python manage.py rundramatiq $WORKER_ARGS"]
    assert "-/etc/django-tasks/worker-%i.env" in service["EnvironmentFile"]
    assert unit_settings("django-tasks-scheduler.service")["Service"]["ExecStart"] == [
        f"{VENV_DIR}/bin/python manage.py runscheduler"
    ]


def test_the_supervisor_group_matches_the_units():
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "deploy" / "supervisor" / "django-tasks.conf")
    assert parser["group:django-tasks"]["programs"].split(",") == ["web", "worker", "scheduler"]
    worker = parser["program:worker"]
    assert "manage.py rundramatiq" in worker["command"]
    assert int(worker["stopwaitsecs"]) > SHUTDOWN_TIMEOUT_S + 10
    assert "manage.py runscheduler" in parser["program:scheduler"]["command"]
    assert "gunicorn" in parser["program:web"]["command"]
    for name in ("web", "worker", "scheduler"):
        program = parser[f"program:{name}"]
        assert (program["stopsignal"], program["stopasgroup"], program["killasgroup"]) == ("TERM", "false", "true")
        assert program["autorestart"] == "true"
        assert "%(ENV_TASKS_ENV_FILE)s" in program["command"]


def test_the_procfile_runs_web_worker_and_scheduler():
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"web", "worker", "scheduler"}
    assert lines["web"].startswith("gunicorn project.wsgi ")
    commands = get_commands()
    for name in ("worker", "scheduler"):
        command = lines[name].split()
        assert command[:2] == ["python", "manage.py"] and command[2] in commands, lines[name]
    assert lines["scheduler"] == "python manage.py runscheduler"
    assert not (ROOT / "deploy" / "Procfile").exists(), "one Procfile, at the root"


def env_example() -> str:
    return (ROOT / ".env.example").read_text()


def test_env_example_documents_every_setting():
    read = set(
        re.findall(r"env_(?:str|int|bool|list)\(\s*\"([A-Z0-9_]+)\"", (ROOT / "project" / "settings.py").read_text())
    )
    assert len(read) > 30
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", env_example(), flags=re.MULTILINE))
    assert read - documented == set(), "settings read from the environment but missing from .env.example"
    assert {"WEB_BIND", "WEB_CONCURRENCY", "WORKER_ARGS", "PORT"} <= documented


def test_env_example_reads_the_same_in_sh_with_every_line_uncommented(tmp_path):
    # supervisor's programs source the file with /bin/sh; systemd reads the same KEY=value lines.
    uncommented = re.sub(r"^# ([A-Z][A-Z0-9_]*=)", r"\1", env_example(), flags=re.MULTILINE)
    (tmp_path / "all.env").write_text(uncommented)
    script = 'set -a && . "$1" && printf "%s|%s|%s" "$TASKS_PURGE_SCHEDULE" "$WORKER_ARGS" "$DEBUG"'
    result = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(tmp_path / "all.env")], capture_output=True, text=True, timeout=30, env={}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "17 3 * * *|--queues knowledge --processes 1 --threads 2|0"
