"""The README's "Add it to your own project", followed from scratch: build the wheel, install it in a
fresh virtualenv, ``django-admin startproject``, paste the README's blocks, migrate, run a real
worker, send a task, see it completed and the admin and health pages answer 200. Two projects: a
plain one, and one with its own regular ``apps`` package and a user app named ``tasks``."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, wait_for

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="builds its own SQLite project, whatever the suite's database: run once, in the SQLite pass",
    ),
]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def readme_block(name: str) -> str:
    """The code block that follows ``<!-- own-project:<name> -->`` in the README."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- own-project:{name} -->\s*```\w*\n(.*?)\n\s*```", readme, re.S)
    assert match, f"README has no own-project:{name} block"
    return textwrap.dedent(match.group(1)) + "\n"


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT, timeout=600)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A virtualenv with the wheel and its base dependencies only (no extra)."""
    path = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", path)
    run(path / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel, timeout=900)
    return path / "bin"


def test_the_wheel_holds_the_reusable_app_with_its_data_and_no_demo_code(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "apps/tasks/templates/admin/dramatiq_tasks/jobrecord/change_list.html" in names
    assert "apps/tasks/templates/admin/dramatiq_tasks/dashboard.html" in names
    assert "apps/tasks/migrations/0001_initial.py" in names and "apps/workflows/migrations/0001_initial.py" in names
    assert "apps/tasks/broker/lua/fetch.lua" in names and "apps/tasks/py.typed" in names
    assert "apps/__init__.py" not in names  # a PEP 420 namespace: a project's own apps/ can sit beside it
    demo = [name for name in names if name.startswith(("apps/knowbase", "project/", "bench/", "tests/", "deploy/"))]
    assert demo == []


def project_env(venv: Path) -> dict[str, str]:
    # Nothing of this repository on the path: the project sees only what the wheel installed.
    return {"PATH": f"{venv}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "REDIS_URL": REDIS_URL,
            "PYTHONUNBUFFERED": "1", "DJANGO_SUPERUSER_PASSWORD": "pw"}  # fmt: skip


def make_project(venv: Path, where: Path, own_apps: bool) -> tuple[Path, str]:
    """A new project following the README; returns its folder and the module of its task."""
    env = project_env(venv)
    where.mkdir()
    run(venv / "django-admin", "startproject", "mysite", where, env=env)
    if own_apps:
        (where / "apps").mkdir()
        (where / "apps" / "__init__.py").write_text(readme_block("apps-init"))
        (where / "apps" / "blog").mkdir()
        run(venv / "python", "manage.py", "startapp", "blog", "apps/blog", cwd=where, env=env)
        apps_py = where / "apps" / "blog" / "apps.py"
        apps_py.write_text(re.sub(r"name = ['\"]blog['\"]", 'name = "apps.blog"', apps_py.read_text()))
        run(venv / "python", "manage.py", "startapp", "tasks", cwd=where, env=env)  # a user app named tasks
        user_apps, task_app = ["apps.blog", "tasks"], "tasks"
    else:
        run(venv / "python", "manage.py", "startapp", "shop", cwd=where, env=env)
        user_apps, task_app = ["shop"], "shop"
    settings = where / "mysite" / "settings.py"
    block = readme_block("settings").replace(
        'redis_key_prefix="mysite"', f'redis_key_prefix="own-{uuid.uuid4().hex[:8]}"'
    )
    settings.write_text(settings.read_text() + f"\nINSTALLED_APPS += {user_apps!r}\n" + block)
    (where / "mysite" / "urls.py").write_text(readme_block("urls"))
    (where / task_app / "tasks.py").write_text(readme_block("tasks"))
    return where, f"{task_app}.tasks"


PAGES = """
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(username="admin"))
for url in ("/admin/", "/admin/dramatiq_tasks/jobrecord/", "/admin/dramatiq_tasks/jobrecord/dashboard/",
            "/admin/dramatiq_tasks/jobrecord/dashboard/data/", "/health/tasks/", "/tasks/api/jobs/"):
    response = client.get(url, follow=True)
    print("PAGE", url, response.status_code, "JOB" if JOB_ID.encode() in response.content else "-",
          "QUEUES-LINK" if b"Queues &amp; workers" in response.content else "-")
"""


@pytest.mark.parametrize("own_apps", [False, True], ids=["plain-project", "own-apps-package-and-a-tasks-app"])
def test_a_new_project_follows_the_readme_to_a_completed_job(venv, tmp_path, own_apps):
    project, task_module = make_project(venv, tmp_path / "site", own_apps)
    env = project_env(venv)
    python = venv / "python"
    run(python, "manage.py", "check", cwd=project, env=env)
    run(python, "manage.py", "migrate", "--noinput", cwd=project, env=env)
    run(python, "manage.py", "createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com",
        cwd=project, env=env)  # fmt: skip

    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [python, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"], cwd=project, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "ready for action" in log_path.read_text(), timeout=60, message=f"the worker ({log_path})")
        assert "Consuming queues: default, high, low." in log_path.read_text()
        job_id = run(
            python, "manage.py", "shell", "-c",
            f"from apps.tasks.enqueue import enqueue; from {task_module} import add; print(enqueue(add, args=(2, 3)))",
            cwd=project, env=env,
        ).strip().splitlines()[-1]  # fmt: skip

        def completed():
            with sqlite3.connect(project / "db.sqlite3") as db:
                row = db.execute("SELECT status, result FROM tasks_jobrecord WHERE message_id = ?", [job_id]).fetchone()
            return row if row and row[0] == "completed" else None

        _, result = wait_for(completed, timeout=30, message=f"job {job_id} completed ({log_path})")
        assert result == "5"

        pages = run(python, "manage.py", "shell", "-c", PAGES.replace("JOB_ID", repr(job_id)), cwd=project, env=env)
        lines = {line.split()[1]: line.split()[2:] for line in pages.splitlines() if line.startswith("PAGE ")}
        assert {url: found[0] for url, found in lines.items()} == dict.fromkeys(lines, "200"), pages
        assert len(lines) == 6
        assert lines["/admin/dramatiq_tasks/jobrecord/"][1] == "JOB"
        assert lines["/admin/"][2] == "QUEUES-LINK"
        assert lines["/tasks/api/jobs/"][1] == "JOB"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
