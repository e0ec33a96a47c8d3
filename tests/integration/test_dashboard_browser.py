"""The web dashboard in a real browser (Playwright driving Debian's chromium) against the
live server and real celery workers: log in, submit a job through the form, watch it
train to 100% with the accuracy curve gaining points, then compare two jobs.

Screenshots go to test-artifacts/. Without chromium these tests fail (they do not skip):
.ci/run installs it (`apt-get install -y chromium`)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright  # requirements.txt pins it

from tests.processes import REPO

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("TENSORFLEET_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(REPO) / "test-artifacts"
PASSWORD = "browser-test-pw"
EPOCHS = 8
CURVE_POINTS = "() => (window.TF && TF.charts && TF.charts.acc) ? TF.charts.acc.data.datasets[0].data.length : -1"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install Debian's package (apt-get install -y chromium; "
            ".ci/run does) or set TENSORFLEET_CHROMIUM; Playwright's own browser download is not used"
        )
    ARTIFACTS.mkdir(exist_ok=True)
    # Playwright's sync API keeps an asyncio loop in this thread, which Django's ORM
    # (the fixtures and flush, not the views: they run in the live server's thread) refuses.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, http_api, live_server):
    user = http_api.user
    user.set_password(PASSWORD)
    user.save()
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/dashboard/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    page.js_errors = errors
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_submit_watch_and_compare_in_a_browser(page, http_api):
    # The overview's cards.
    assert page.locator("#card-workers_online").inner_text() in ("1", "2")
    shot(page, "overview-empty")

    # The form first answers with the serializer's own messages.
    page.goto("/dashboard/submit/")
    page.select_option("#id_model_type", "cnn")
    page.select_option("#id_dataset", "iris")
    page.click("#submit")
    assert "cnn needs an image dataset" in page.locator(".field-error").first.inner_text()
    shot(page, "submit-errors")

    page.select_option("#id_model_type", "mlp")
    page.fill("#id_name", "browser-job")
    page.fill("#id_epochs", str(EPOCHS))
    page.select_option("#id_dataset", "digits")
    page.fill("#id_batch_size", "8")
    page.fill("#id_num_workers", "2")
    page.fill("#id_learning_rate", "0.05")
    page.click("#submit")
    page.wait_for_url("**/dashboard/jobs/*/")
    job_id = page.url.rstrip("/").split("/")[-1]
    assert "Job submitted." in page.content()

    # Live: progress climbs to 100% and the accuracy curve gains points, without a reload by us
    # (the page reloads itself once when the job ends, for its checkpoints and buttons).
    seen_points: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            n = page.evaluate(CURVE_POINTS)
            done = page.locator("#job-status").inner_text() == "succeeded"
        except PlaywrightError:  # the reload at the end
            continue
        if not seen_points or n != seen_points[-1]:
            seen_points.append(n)
            if 0 < n < EPOCHS:
                shot(page, "job-running")
        if done:
            break
        page.wait_for_timeout(200)
    page.wait_for_load_state()
    assert page.locator("#job-status").inner_text() == "succeeded", seen_points
    assert page.locator("#job-progress").inner_text() == "100%"
    page.wait_for_function(f"() => ({CURVE_POINTS})() === {EPOCHS}")
    assert any(0 < n < EPOCHS for n in seen_points), f"the curve never grew while watched: {seen_points}"
    assert page.locator("#task-grid td.status.succeeded").count() == 2 * EPOCHS
    assert page.locator("a", has_text="download").count() >= 1
    shot(page, "job-succeeded")

    # A checkpoint downloads with the session.
    with page.expect_download() as download:
        page.locator("a", has_text="download").first.click()
    assert download.value.suggested_filename.endswith(".safetensors")

    # A second job (through the API), then both on one chart.
    other = http_api.post(
        "/jobs", json={"name": "api-job", "model_type": "logreg", "dataset": "iris", "epochs": 3, "num_workers": 1}
    ).json()
    http_api.wait_job(other["id"], until=("succeeded",))
    page.goto(f"/dashboard/compare?jobs={job_id},{other['id']}")
    page.wait_for_function("() => TF.charts && TF.charts.compare")
    lengths = page.evaluate("() => TF.charts.compare.data.datasets.map(d => d.data.length)")
    assert lengths == [EPOCHS, 3]
    assert "browser-job" in page.content() and "api-job" in page.content()
    shot(page, "compare")

    # The jobs list and the overview, now with two succeeded jobs.
    page.goto("/dashboard/jobs/?status=succeeded")
    assert page.locator("table.jobs tbody tr").count() == 2
    shot(page, "jobs")
    page.goto("/dashboard/")
    page.wait_for_function("() => document.getElementById('live-state').textContent.startsWith('updated')")
    assert page.locator("#card-succeeded_24h").inner_text() == "2"
    shot(page, "overview")
    assert page.js_errors == []
