"""A person's path through the admin in headless Chromium (Debian's chromium, no browser download),
with a real worker: the dashboard (health banner, refresh, pause/resume, links, failed count), the
job list's filters, a bulk retry, cancelling a delayed job; screenshots at 1280 and 800 px, light
and dark, under var/screenshots/ (git-ignored) for people to look at."""

from __future__ import annotations

import itertools
import os
import re
import shutil

import pytest
from django.contrib.auth.models import User
from django.db import connections

from apps.tasks import records
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.records.events import event_fields
from tests.helpers import ROOT, wait_for
from tests.tasks.middleware.test_lifecycle import wait_for_status
from tests.tasks.services.test_recovery import FAST_RECOVERY, WORKER_ARGS
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SCREENSHOTS = ROOT / "var" / "screenshots"
LIST = "/admin/dramatiq_tasks/jobrecord/"
DASHBOARD = f"{LIST}dashboard/"
XSS_ACTOR = '<img src=x onerror="window.__xss = 1">'
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


def selected_ids(page) -> set[str]:
    """The job ids the job list shows (its action checkboxes)."""
    return {box.get_attribute("value") for box in page.locator("input[name=_selected_action]").all()}


def shoot(page, name: str, width: int, scheme: str) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    path = SCREENSHOTS / f"{name}-{width}-{scheme}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def fits_the_window(page) -> bool:
    """No horizontal scrolling of the page itself (a wide table may scroll inside its own box)."""
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def overlap(first: dict, second: dict) -> bool:
    """Whether two bounding boxes share any area."""
    return (
        first["x"] < second["x"] + second["width"]
        and second["x"] < first["x"] + first["width"]
        and first["y"] < second["y"] + second["height"]
        and second["y"] < first["y"] + first["height"]
    )


def test_the_admin_flows_in_a_real_browser(
    browser_page, live_server, start_worker, clean_queues, broker_redis, one_of_two_running
):
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # a loaded machine: a few 2 s refreshes, not one
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    start_worker(*WORKER_ARGS, **FAST_RECOVERY)
    failed_id = enqueue(tasks.broken, args=("retry me from the admin",))
    done_id = enqueue(tasks.add, args=(1, 2))
    wait_for_status(failed_id, JobStatus.DEAD_LETTER)
    wait_for_status(done_id, JobStatus.COMPLETED)
    # An event whose fields are markup: the page must show it as text, never run it.
    records.record_event(
        event_fields("started", job_id="<b>not-a-job</b>", queue="<i>q</i>", actor=XSS_ACTOR), wait=True
    )

    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next={DASHBOARD}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")

    # The health banner: the worker consumes "default" only; the page polls, no reload needed.
    expect(page.locator("#tasks-worker-count")).not_to_have_text("0")
    expect(page.locator("#tasks-health li.warning")).to_have_text(
        "No live worker consumes queue high, low, knowledge: its jobs wait."
    )
    assert "default" in page.inner_text("#tasks-workers")
    # Actor limits: running / limit from the slots taken in Redis, refreshed in place; rates with their unit.
    limits_table = page.locator("#tasks-limits")
    running = limits_table.locator('tr[data-actor="one_of_two"] td[data-field="concurrency"]')
    expect(running).to_have_text("1 / 2")
    expect(limits_table.locator('tr[data-actor="three_a_second"] td[data-field="rate"]')).to_have_text("3 per 1 s")
    assert limits_table.locator("tbody tr").count() == 2  # the actors without limits are not listed
    broker_redis.set(one_of_two_running, "2")
    expect(running).to_have_text("2 / 2")
    assert page.locator("#tasks-chart svg .tasks-series-completed").count() == 2  # the line and its legend
    events = page.locator("#tasks-events")
    expect(events).to_contain_text(XSS_ACTOR)
    assert page.evaluate("window.__xss") is None and events.locator("img, b, i").count() == 0
    job_link = events.locator(f"tr.ev-dead_letter a[href='{LIST}{failed_id}/change/']")
    expect(events.locator(f"tr.ev-dead_letter a[href='{LIST}?queue_name=default']")).to_have_count(1)

    # The failed count links to exactly the records it counts.
    expect(page.locator("#tasks-failed")).to_have_text("1")
    page.click("#tasks-failed-link")
    expect(page).to_have_url(re.compile(r"status__in=failed%2Cdead_letter&finished_at__gte="))
    expect(page.locator("input[name=_selected_action]")).to_have_count(1)
    assert selected_ids(page) == {failed_id}

    # An event links to its job.
    page.goto(f"{live_server.url}{DASHBOARD}")
    job_link.click()
    expect(page.locator("#content")).to_contain_text(failed_id)
    assert page.url.endswith(f"{LIST}{failed_id}/change/")

    # Pause "default" from the dashboard: a new job waits (the refresh shows it ready) until resumed.
    page.goto(f"{live_server.url}{DASHBOARD}")
    completed_before = int(page.inner_text("#tasks-completed"))
    page.click("#pause-default")
    expect(page.locator("ul.messagelist:not(#tasks-health)")).to_contain_text("Paused 'default'")
    expect(page.locator("#tasks-health")).to_contain_text("Paused: default")
    page.evaluate("window.__sameDocument = true")
    waiting_id = enqueue(tasks.add, args=(2, 3))
    expect(page.locator('#tasks-queues tr[data-queue="default"] td[data-field="ready"]')).to_have_text("1")
    shoot(page, "dashboard-paused", 1280, "light")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")
    assert JobRecord.objects.get(message_id=waiting_id).status == JobStatus.PENDING
    page.click("#resume-default")
    expect(page.locator("ul.messagelist:not(#tasks-health)")).to_contain_text("Resumed 'default'")
    wait_for_status(waiting_id, JobStatus.COMPLETED)
    expect(page.locator("#tasks-completed")).to_have_text(str(completed_before + 1))
    expect(page.locator("#tasks-health")).not_to_contain_text("Paused")
    # A job that runs after the page loaded: its count goes up by itself, in the same document.
    page.evaluate("window.__sameDocument = true")
    enqueue(tasks.add, args=(3, 4))
    expect(page.locator("#tasks-completed")).to_have_text(str(completed_before + 2))
    assert page.evaluate("window.__sameDocument") is True

    # Light and dark, wide and narrow. Colours follow the admin's theme, the chart's included.
    failed_stroke = "getComputedStyle(document.querySelector('polyline.tasks-series-failed')).stroke"
    for width in (1280, 800):
        for scheme, stroke in (("light", "rgb(186, 33, 33)"), ("dark", "rgb(227, 95, 95)")):
            shoot(page, "dashboard", width, scheme)
            assert page.evaluate(failed_stroke) == stroke, (width, scheme)
    # At 800 px the page does not overflow: the sections stack and the tables scroll inside their box.
    assert fits_the_window(page)
    queues_box = page.locator("#tasks-queues").bounding_box()
    workers_box = page.locator("#tasks-workers").bounding_box()
    assert workers_box["y"] >= queues_box["y"] + queues_box["height"]
    scrolls = "(box => box.scrollWidth > box.clientWidth)(document.querySelector('#tasks-queues').parentElement)"
    assert page.evaluate(scrolls)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")

    # The job list's filters: dead letters of queue "default".
    page.goto(f"{live_server.url}{LIST}")
    page.click("#changelist-filter details[data-filter-title=status] a:text-is('Dead letter')")
    page.click("#changelist-filter details[data-filter-title=queue] a:text-is('default')")
    expect(page).to_have_url(re.compile(r"\?(?=.*status__exact=dead_letter)(?=.*queue_name=default)"))
    expect(page.locator("input[name=_selected_action]")).to_have_count(1)
    assert selected_ids(page) == {failed_id}
    shoot(page, "job-list-filtered", 800, "dark")
    # At 800 px with the nav sidebar open (a 450 px content box): nothing overlaps, the page does not
    # scroll sideways (the results do, in their box), the search help is lines of words.
    assert page.locator("#nav-sidebar").is_visible()
    assert fits_the_window(page)
    parts = ("#content h1", "#content-main .object-tools", "#toolbar", "#result_list", "#changelist-filter")
    boxes = {css: page.locator(css).bounding_box() for css in parts}
    for first, second in itertools.combinations(parts, 2):
        assert not overlap(boxes[first], boxes[second]), (first, second)
    # The results get the content box's width, not what a filter column would leave them.
    content_width = page.locator("#content-main").bounding_box()["width"]
    assert page.locator("#changelist-form .results").bounding_box()["width"] >= 0.9 * content_width
    assert page.locator("#searchbar_helptext").bounding_box()["width"] >= 0.9 * content_width - 40
    scrolls = "(box => box.scrollWidth > box.clientWidth)(document.querySelector('#changelist-form .results'))"
    assert page.evaluate(scrolls)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Bulk retry of everything the filters match, after a page with the count.
    attempts = JobRecord.objects.get(message_id=failed_id).attempts
    page.click("#content-main .object-tools a:text-is('Retry all matching')")
    expect(page.locator("#bulk-count")).to_have_text("1")
    page.click("#confirm-bulk")
    expect(page.locator(".messagelist")).to_contain_text("Retry all matching: 1 done.")
    wait_for(
        lambda: JobRecord.objects.filter(
            message_id=failed_id, status=JobStatus.DEAD_LETTER, attempts__gt=attempts
        ).exists(),
        message="the retried job's next attempt",
    )

    # Cancel a delayed job from its detail page.
    delayed_id = enqueue(tasks.add, args=(4, 5), delay=600_000)
    page.goto(f"{live_server.url}{LIST}{delayed_id}/change/")
    page.click("#cancel-job")
    expect(page.locator(".messagelist")).to_contain_text(f"Cancelled {delayed_id}.")
    assert JobRecord.objects.get(message_id=delayed_id).status == JobStatus.CANCELLED

    # The list of one actor's jobs says its limits.
    page.goto(f"{live_server.url}{LIST}?actor_name=one_of_two")
    expect(page.locator("#actor-limits")).to_have_text("Limits of actor one_of_two: at most 2 running at once (2 now).")
    shoot(page, "job-list-actor", 800, "light")
    assert fits_the_window(page)
