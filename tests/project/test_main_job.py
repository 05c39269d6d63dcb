"""The README's first command runs the main job end to end (RUN_ONCE=1 stops it after the demo)."""

import subprocess

import pytest

from tests.helpers import ROOT, free_port, manage_env


@pytest.mark.worker
def test_make_run_sends_a_task_through_a_worker_and_the_web_app(tmp_path):
    env = manage_env(
        RUN_ONCE="1",
        PORT=str(free_port()),
        DATABASE_URL=f"sqlite:///{tmp_path / 'main-job.sqlite3'}",
    )
    env.pop("DJANGO_SETTINGS_MODULE")  # the main job runs the project's own settings
    result = subprocess.run(["make", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "web app answers at" in output
    assert "A worker processed ping" in output
    assert "completed, 3 chunks" in output  # the sample document went through the knowledge queue
