"""A person's path through the admin in headless Chromium (Debian's chromium, no browser download):
log in, open Queues & workers, see the queues and a live worker, retry a failed job from the list."""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth.models import User
from django.db import connections

from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import wait_for
from tests.tasks.middleware.test_lifecycle import wait_for_status
from tests.tasks.services.test_recovery import FAST_RECOVERY, WORKER_ARGS
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def browser_page(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "Debian's chromium is required: apt-get install chromium (scripts/test.sh does)"
    # Playwright's sync API keeps an event loop in this thread; the ORM calls below are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        # While Playwright's event loop runs in this thread, asgiref gives the ORM connections of
        # their own: close them here, or they outlive the test and block dropping the test database.
        connections.close_all()
        context.close()
        browser.close()


def test_admin_dashboard_and_retry_in_a_real_browser(browser_page, live_server, start_worker, clean_queues, tmp_path):
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    start_worker(*WORKER_ARGS, **FAST_RECOVERY)
    failed_id = enqueue(tasks.broken, args=("retry me from the admin",))
    wait_for_status(failed_id, JobStatus.DEAD_LETTER)

    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/dramatiq_tasks/jobrecord/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")

    page.wait_for_selector("#tasks-queues")
    assert page.locator('#tasks-queues tr[data-queue="default"]').count() == 1
    # The live worker appears (the page polls every 2 s, no reload needed).
    page.wait_for_function("document.querySelector('#tasks-worker-count').textContent !== '0'")
    assert "default" in page.inner_text("#tasks-workers")
    assert page.locator("#tasks-chart svg").count() == 1
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/dramatiq_tasks/jobrecord/?status__exact=dead_letter")
    page.check(f"input[name=_selected_action][value='{failed_id}']")
    page.select_option("select[name=action]", "retry_selected")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "Retried 1 job(s)." in page.inner_text(".messagelist")
    page.screenshot(path=str(tmp_path / "retried.png"), full_page=True)

    # The requeued job ran again (and, still broken, failed again after a second attempt).
    wait_for(
        lambda: JobRecord.objects.filter(message_id=failed_id, status=JobStatus.DEAD_LETTER, attempts=2).exists(),
        message="the retried job's second attempt",
    )
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
