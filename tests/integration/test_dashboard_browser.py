"""The web dashboard in a real browser (Playwright driving Debian's chromium) against the
live server and real celery workers, every page: log in, submit a job through the form,
watch it train to 100% with the accuracy curve gaining points, compare two jobs by
ticking them in the list, cancel after a confirmation; a sweep with its trials and
parallel-coordinates plot, a dataset uploaded with a progress bar, listed and deleted,
projects and tags, the model registry; and each page at phone width (375 px) without
sideways scrolling.

Screenshots go to test-artifacts/ (dashboard-*.png). Without chromium these tests fail (they do not skip):
.ci/run installs it (`apt-get install -y chromium`)."""

from __future__ import annotations

import os
import re
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
    dialogs: list[str] = []  # confirmations asked; accepted unless a test says otherwise

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss() if getattr(page, "refuse_next_dialog", False) else dialog.accept()
        page.refuse_next_dialog = False

    page.on("dialog", on_dialog)
    page.dialogs = dialogs
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
    # Each epoch says how long it waited in the queue and how long it trained.
    assert page.locator("#metrics-rows td.queued-time").count() == EPOCHS
    assert all(
        re.fullmatch(r"[0-9.]+s|\d+m \d\ds", t) for t in page.locator("#metrics-rows td.trained-time").all_inner_texts()
    )
    assert re.fullmatch(r"\d+\.\d %", page.locator("#job-best").inner_text())
    assert page.locator("a", has_text="download").count() >= 1
    shot(page, "job-succeeded")

    # A checkpoint downloads with the session.
    with page.expect_download() as download:
        page.locator("a", has_text="download").first.click()
    assert download.value.suggested_filename.endswith(".safetensors")

    # A second job (through the API), then both on one chart: ticked in the jobs list.
    other = http_api.post(
        "/jobs", json={"name": "api-job", "model_type": "logreg", "dataset": "iris", "epochs": 3, "num_workers": 1}
    ).json()
    http_api.wait_job(other["id"], until=("succeeded",))
    page.goto("/dashboard/jobs/")
    assert page.locator("#compare").is_disabled()
    page.check(f"input[name=jobs][value='{job_id}']")
    page.check(f"input[name=jobs][value='{other['id']}']")
    assert page.locator("#compare-count").inner_text() == "2 jobs ticked"
    shot(page, "jobs-ticked")
    page.click("#compare")
    page.wait_for_url("**/dashboard/compare?jobs=*")
    page.wait_for_function("() => TF.charts && TF.charts.compare")
    lengths = page.evaluate("() => TF.charts.compare.data.datasets.map(d => d.data.length)")
    assert sorted(lengths) == [3, EPOCHS]
    assert "browser-job" in page.content() and "api-job" in page.content()
    shot(page, "compare")

    # Cancel asks first: refused, the job goes on; accepted, it is cancelled.
    long = http_api.post(
        "/jobs", json={"name": "to-cancel", "model_type": "mlp", "dataset": "digits", "epochs": 200, "num_workers": 1}
    ).json()
    page.goto(f"/dashboard/jobs/{long['id']}/")
    page.refuse_next_dialog = True
    page.click("#cancel")
    assert page.dialogs[-1].startswith("Cancel job to-cancel?")
    assert http_api.get(f"/jobs/{long['id']}").json()["status"] in ("queued", "running")
    page.click("#cancel")
    page.wait_for_url(f"**/dashboard/jobs/{long['id']}/")
    assert "Job cancelled." in page.content()
    assert http_api.wait_job(long["id"], until=("cancelled",), timeout=60)["status"] == "cancelled"

    # The jobs list and the overview, now with two succeeded jobs.
    page.goto("/dashboard/jobs/?status=succeeded&ordering=-best_val_accuracy")
    assert page.locator("table.jobs tbody tr").count() == 2
    shot(page, "jobs")
    page.goto("/dashboard/")
    page.wait_for_function("() => document.getElementById('live-state').textContent.startsWith('updated')")
    assert page.locator("#card-succeeded_24h").inner_text() == "2"
    shot(page, "overview")
    assert page.js_errors == []


PAGES_AT_PHONE_WIDTH = ("/dashboard/", "/dashboard/jobs/", "/dashboard/submit/", "/dashboard/sweeps/",
                        "/dashboard/datasets/", "/dashboard/projects/", "/dashboard/models/")  # fmt: skip
CSV = "a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(60))


def wait_sweep(http_api, sweep_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http_api.get(f"/sweeps/{sweep_id}").json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"sweep {sweep_id} still {body['status']}")


def no_sideways_scroll(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_sweeps_datasets_projects_registry_and_phone_width(page, http_api, browser, live_server, tmp_path):
    # A project, and a sweep in it (its trials take the project and the tag).
    assert http_api.post("/projects", json={"name": "vision", "description": "browser test"}).status_code == 201
    sweep = http_api.post(
        "/sweeps",
        json={
            "name": "lr-search",
            "base": {"model_type": "logreg", "dataset": "iris", "epochs": 2, "num_workers": 1},
            "space": {"learning_rate": {"log_uniform": [0.001, 0.3]}, "batch_size": {"choice": [8, 16]}},
            "trials": 4,
            "max_concurrent": 2,
            "project": "vision",
            "tags": ["search"],
        },
    )
    assert sweep.status_code == 201, sweep.text
    done = wait_sweep(http_api, sweep.json()["id"])
    assert done["status"] == "succeeded" and done["best"], done

    page.goto("/dashboard/sweeps/")
    assert page.locator(f"tr[data-sweep='{done['id']}']").count() == 1
    shot(page, "sweeps")
    page.click("text=lr-search")
    page.wait_for_url(f"**/dashboard/sweeps/{done['id']}/")
    assert page.locator("#parallel polyline.trial-line").count() == 4
    assert page.locator("#parallel polyline.trial-line.best").count() == 1
    assert page.locator("#parallel g.axis").count() == 3  # batch_size, learning_rate, val_accuracy
    assert f"Best trial: #{done['best']['trial_number']}" in page.locator("#best-trial").inner_text()
    assert page.locator("#trials tbody tr").count() == 4
    assert re.fullmatch(r"\d+\.\d %", page.locator("#trials tbody tr.best td").nth(4).inner_text())
    shot(page, "sweep-detail")

    # Projects and tags: the project's trials; the tag filters the jobs list.
    page.goto("/dashboard/projects/")
    row = page.locator("tr[data-project='vision']")
    assert row.locator("td").nth(3).inner_text() == "4" and row.locator("td").nth(4).inner_text() == "1"
    shot(page, "projects")
    page.click("#tags a.tag:has-text('search')")
    page.wait_for_url("**/dashboard/jobs/?tag=search")
    assert page.locator("table.jobs tbody tr").count() == 4
    page.goto("/dashboard/projects/")
    page.click("text=vision")
    assert page.locator("table.jobs tbody tr").count() == 4 and "lr-search" in page.content()
    shot(page, "project-detail")

    # Datasets: a bad file says why (the API's message), a good one uploads with its progress.
    bad, good = tmp_path / "broken.csv", tmp_path / "points.csv"
    bad.write_text("a,b\n1,2\n")
    good.write_text(CSV)
    page.goto("/dashboard/datasets/")
    page.set_input_files("#upload-file", str(bad))
    page.click("#upload")
    page.wait_for_selector("#upload-errors p.error")
    assert "label" in page.locator("#upload-errors").inner_text()
    assert page.locator("#upload-progress").inner_text() == "not uploaded"
    shot(page, "datasets-upload-refused")
    page.set_input_files("#upload-file", str(good))
    page.click("#upload")
    page.wait_for_url("**/dashboard/datasets/?uploaded=*")
    assert page.locator("#uploaded").inner_text() == "Uploaded points@1."
    page.set_input_files("#upload-file", str(good))
    page.click("#upload")
    page.wait_for_url("**/dashboard/datasets/?uploaded=points%402")
    assert page.locator("#datasets tr[data-dataset='points@2']").count() == 1
    shot(page, "datasets")
    page.locator("tr[data-dataset='points@1'] button.danger").click()
    page.wait_for_selector(".messages li.success")
    assert page.dialogs[-1].startswith("Delete dataset points version 1?")
    assert "Dataset points@1 deleted." in page.locator(".messages").inner_text()
    assert page.locator("#datasets tr[data-dataset='points@1']").count() == 0

    # The registry: the best trial as version 1, the champion alias on it.
    best_job = done["best"]["job_id"]
    assert http_api.post("/models", json={"name": "iris-clf", "description": "from the sweep"}).status_code == 201
    assert http_api.post("/models/iris-clf/versions", json={"job": best_job}).status_code == 201
    moved = http_api.session.put(f"{http_api.base}/models/iris-clf/aliases/champion", json={"version": 1}, timeout=30)
    assert moved.status_code == 200, moved.text
    page.goto("/dashboard/models/")
    assert "champion → v1" in page.locator("tr[data-model='iris-clf']").inner_text()
    shot(page, "models")
    page.click("text=iris-clf")
    version = page.locator("#versions tr[data-version='1']")
    assert "champion" in version.inner_text() and re.search(r"\d+\.\d %", version.inner_text())
    assert version.locator(f"a[href='/dashboard/jobs/{best_job}/']").count() == 1
    shot(page, "model-detail")

    # Phone width: every page fits 375 px (wide tables scroll in their own box).
    phone = browser.new_context(
        base_url=live_server.url, viewport={"width": 375, "height": 800}, storage_state=page.context.storage_state()
    )
    small = phone.new_page()
    widths = {}
    for path in (*PAGES_AT_PHONE_WIDTH, f"/dashboard/sweeps/{done['id']}/", f"/dashboard/jobs/{best_job}/",
                 "/dashboard/models/iris-clf/", f"/dashboard/compare?jobs={best_job}"):  # fmt: skip
        small.goto(path)
        small.wait_for_load_state()
        widths[path] = no_sideways_scroll(small)
    small.goto(f"/dashboard/sweeps/{done['id']}/")
    shot(small, "phone-sweep")
    small.goto(f"/dashboard/jobs/{best_job}/")
    shot(small, "phone-job")
    phone.close()
    assert all(w <= 375 for w in widths.values()), widths
    assert page.js_errors == []
