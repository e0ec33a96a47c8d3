"""The dashboard's pages for what the API does besides jobs (sweeps, datasets, projects and
tags, the model registry), the jobs list's filters and compare-by-ticking, the epoch times
split into queue and training, and the formatting helpers. Each page: another user's rows
are a 404, every POST needs its CSRF token, a refusal says what the API says."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from jobs.models import EpochMetric, Job, Status, Sweep, Tag
from jobs.registry import services as registry
from jobs.services import projects
from jobs.services.sweeps import EARLY_STOPPED
from storage_app.models import Dataset
from tensorfleet_site.dashboard import formatting, parallel
from tensorfleet_site.dashboard.timing import epoch_times
from tests.factories import JobFactory, UserFactory
from tests.registry_helpers import finished_job

pytestmark = pytest.mark.django_db

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(40))


@pytest.fixture(autouse=True)
def no_broker():
    with mock.patch("monitoring_app.overview._online_workers", return_value=[]):
        yield


@pytest.fixture
def web(client, user):
    user.save()
    client.force_login(user)
    return client


def logged_in(user, *, strict: bool = False) -> Client:
    """A browser session (UserFactory sets the password without saving it; a session checks the row)."""
    user.save()
    client = Client(enforce_csrf_checks=strict)
    client.force_login(user)
    return client


def strict_client(user) -> Client:
    return logged_in(user, strict=True)


def token_of(client: Client, page: str) -> str:
    client.get(page)
    return client.cookies["csrftoken"].value


# Formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, shown",
    [(None, "–"), (0.42, "0.4s"), (12.3, "12s"), (92, "1m 32s"), (605, "10m 05s"), (7384, "2h 03m"), (90000, "1d 01h")],
)
def test_durations_read_as_minutes_and_seconds(seconds, shown):
    assert formatting.duration(seconds) == shown


def test_accuracies_sizes_and_losses_are_formatted():
    assert formatting.accuracy(0.97222) == "97.2 %" and formatting.accuracy(None) == "–"
    assert [formatting.size(n) for n in (512, 1536, 12_345_678, 3 * 10**9)] == ["512 B", "1.5 kB", "12.3 MB", "3.0 GB"]
    assert formatting.loss(0.123456) == "0.1235" and formatting.loss(0.00001234) == "1.234e-05"
    assert formatting.rate(12345.6) == "12,346/s" and formatting.number(0.001234567) == "0.001235"
    assert formatting.number(32) == "32" and formatting.number("adam") == "adam"


def test_an_early_stop_says_so_instead_of_cancelled():
    trial = Job(status=Status.CANCELLED, error=EARLY_STOPPED)
    stopped = Job(status=Status.SUCCEEDED, stop_reason="val_loss did not improve for 2 epochs")
    assert formatting.status_label(trial) == "early-stopped" and formatting.status_class(trial) == "early"
    assert formatting.status_label(stopped) == "stopped early"
    assert formatting.status_label(Job(status=Status.CANCELLED)) == "cancelled"
    assert formatting.status_label({"status": "cancelled", "reason": EARLY_STOPPED}) == "early-stopped"


# Epoch times ----------------------------------------------------------------------------------


def test_epoch_time_splits_waiting_in_the_queue_from_training(web, user):
    job = JobFactory(owner=user, status=Status.RUNNING, num_workers=2, sync_every_steps=None)
    t0 = timezone.now()
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    # Epoch 1: shard 0 waited 5 s and trained 20 s, shard 1 waited 65 s and trained 10 s.
    job.tasks.create(
        epoch=1, shard=0, status=Status.SUCCEEDED, dispatched_at=at(0), started_at=at(5), finished_at=at(25)
    )
    job.tasks.create(
        epoch=1, shard=1, status=Status.SUCCEEDED, dispatched_at=at(0), started_at=at(65), finished_at=at(75)
    )
    # Epoch 2 in two rounds: they add up.
    job.tasks.create(epoch=2, round=1, shard=0, dispatched_at=at(80), started_at=at(81), finished_at=at(91))
    job.tasks.create(epoch=2, round=2, shard=0, dispatched_at=at(92), started_at=at(94), finished_at=at(104))
    times = epoch_times(job)
    assert (times[1].queued_s, times[1].trained_s) == (65.0, 20.0)
    assert (times[2].queued_s, times[2].trained_s) == (3.0, 20.0)
    EpochMetric.objects.create(
        job=job, epoch=1, train_loss=0.5, val_loss=0.4, val_accuracy=0.9722, samples=100, samples_per_s=1234.5,
        duration_s=92,
    )  # fmt: skip
    body = web.get(f"/dashboard/jobs/{job.id}/").content.decode()
    assert "Waited in queue" in body and "Training" in body
    row = '<td class="queued-time">1m 05s</td><td class="trained-time">20s</td><td>1m 32s</td>'
    assert row in body and "97.2 %" in body and "1,234/s" in body
    fragment = web.get(f"/dashboard/jobs/{job.id}/epochs").content.decode()
    assert row in fragment and "<html" not in fragment


# Jobs list ----------------------------------------------------------------------------------


def test_the_jobs_list_filters_by_project_and_tag_and_offers_ticking_to_compare(web, user, other_user):
    project = projects.project_create(owner=user, name="vision")
    a = JobFactory(owner=user, name="in-project", project=project)
    b = JobFactory(owner=user, name="tagged")
    projects.tags_set(obj=b, names=["baseline"])
    JobFactory(owner=other_user, name="not-mine", project=None)
    body = web.get(f"/dashboard/jobs/?project={project.id}").content.decode()
    assert "in-project" in body and "tagged" not in body
    body = web.get("/dashboard/jobs/?project=vision").content.decode()
    assert "in-project" in body and "tagged" not in body
    body = web.get("/dashboard/jobs/?tag=baseline").content.decode()
    assert "tagged" in body and "in-project" not in body and "not-mine" not in body
    assert f'name="jobs" value="{a.id}" form="compare-form"' in web.get("/dashboard/jobs/").content.decode()
    bad = web.get("/dashboard/jobs/?tag=" + "no%20spaces")
    assert bad.status_code == 400 and "is not a tag" in bad.content.decode()
    assert web.get("/dashboard/jobs/?ordering=-best_val_accuracy").status_code == 200


def test_compare_takes_the_ticked_jobs(web, user, other_user):
    a, b = JobFactory(owner=user, name="job-a"), JobFactory(owner=user, name="job-b")
    response = web.get(f"/dashboard/compare?jobs={a.id}&jobs={b.id}")
    assert response.status_code == 200 and [j.name for j in response.context["jobs"]] == ["job-a", "job-b"]
    assert response.context["enough"]
    theirs = JobFactory(owner=other_user)
    assert web.get(f"/dashboard/compare?jobs={a.id}&jobs={theirs.id}").status_code == 404
    assert "Tick two" in web.get("/dashboard/compare").content.decode()


def test_rows_say_early_stopped_and_cancel_asks_first(web, user):
    JobFactory(owner=user, name="trial", status=Status.CANCELLED, error=EARLY_STOPPED)
    JobFactory(owner=user, name="patient", status=Status.SUCCEEDED, stop_reason="no improvement for 3 epochs")
    running = JobFactory(owner=user, name="going", status=Status.RUNNING)
    body = web.get("/dashboard/jobs/").content.decode()
    assert ">early-stopped</span>" in body and ">stopped early</span>" in body and ">cancelled</span>" not in body
    assert 'data-confirm="Cancel job going?' in body
    detail = web.get(f"/dashboard/jobs/{running.id}/").content.decode()
    assert "data-confirm=" in detail and "dashboard/confirm.js" in detail


# Sweeps ------------------------------------------------------------------------------------


def make_sweep(owner, **extra) -> Sweep:
    sweep = Sweep.objects.create(
        owner=owner,
        name="lr-search",
        space={"learning_rate": {"log_uniform": [0.001, 0.1]}, "batch_size": {"choice": [16, 32]}},
        max_trials=4,
        max_concurrent=2,
        started_at=timezone.now(),
        **extra,
    )
    rows = [(1, 0.01, 16, 0.91, Status.SUCCEEDED, ""), (2, 0.05, 32, 0.95, Status.SUCCEEDED, "")]
    rows += [(3, 0.002, 16, 0.40, Status.CANCELLED, EARLY_STOPPED), (4, 0.02, 32, None, Status.RUNNING, "")]
    for n, lr, bs, acc, status, error in rows:
        job = JobFactory(
            owner=owner, sweep=sweep, trial_number=n, learning_rate=lr, batch_size=bs, val_accuracy=acc,
            status=status, error=error, name=f"lr-search #{n}",
        )  # fmt: skip
        if n == 2:
            sweep.best_trial, sweep.best_metric = job, acc
    sweep.save()
    return sweep


def test_the_sweeps_pages_show_trials_params_the_best_and_a_parallel_plot(web, user, other_user):
    sweep = make_sweep(user)
    listed = web.get("/dashboard/sweeps/").content.decode()
    assert "lr-search" in listed and "1 early-stopped" in listed and "95.0 %" in listed
    response = web.get(f"/dashboard/sweeps/{sweep.id}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="best-trial"' in body and "Best trial: #2" in body and "<code>learning_rate=0.05</code>" in body
    assert body.count('class="trial-line') == 4 and body.count('class="trial-line best"') == 1
    assert body.count("stroke-dasharray") == 1  # the running trial has no metric yet
    assert ">early-stopped<" in body and 'data-trial="3"' in body
    assert web.get(f"/dashboard/sweeps/{make_sweep(other_user).id}/").status_code == 404


def test_the_parallel_plot_places_choices_and_log_ranges():
    space = {"learning_rate": {"log_uniform": [0.001, 0.1]}, "batch_size": {"choice": [16, 32]}, "epochs": 3}
    trials = [
        parallel.Trial(1, {"learning_rate": 0.01, "batch_size": 16, "epochs": 3}, 0.5),
        parallel.Trial(2, {"learning_rate": 0.1, "batch_size": 32, "epochs": 3}, 0.9, best=True),
    ]
    chart = parallel.plot(space, trials, metric="val_accuracy", mode="max")
    assert [a["name"] for a in chart["axes"]] == ["batch_size", "learning_rate", "val_accuracy"]  # fixed: no axis
    top, bottom = chart["axis_top"], chart["axis_bottom"]
    first = [tuple(map(float, p.split(","))) for p in chart["lines"][0]["points"].split()]
    assert first[0][1] == bottom and first[1][1] == pytest.approx(
        (top + bottom) / 2, abs=0.1
    )  # 0.01: mid of the log range
    best = chart["lines"][-1]
    assert best["best"] and best["colour"] == "#2563eb"  # the best metric: blue, drawn last
    assert all(y == top for _, y in (tuple(map(float, p.split(","))) for p in best["points"].split()))


def test_cancelling_a_sweep_needs_csrf_a_writer_and_says_what_the_api_says(user, other_user):
    user.save()
    sweep = make_sweep(user)
    strict = strict_client(user)
    assert strict.post(f"/dashboard/sweeps/{sweep.id}/cancel").status_code == 403
    token = token_of(strict, f"/dashboard/sweeps/{sweep.id}/")
    with mock.patch("jobs.orchestration.revoke", lambda ids: None):
        response = strict.post(f"/dashboard/sweeps/{sweep.id}/cancel", {"csrfmiddlewaretoken": token}, follow=True)
    assert "Sweep cancelled" in response.content.decode()
    assert Sweep.objects.get(id=sweep.id).status == Status.CANCELLED
    again = strict.post(f"/dashboard/sweeps/{sweep.id}/cancel", {"csrfmiddlewaretoken": token}, follow=True)
    assert "sweep is already cancelled" in again.content.decode()
    stranger = strict_client(other_user)
    assert stranger.post(f"/dashboard/sweeps/{sweep.id}/cancel").status_code in (403, 404)
    other = logged_in(other_user)
    assert other.post(f"/dashboard/sweeps/{sweep.id}/cancel").status_code == 404


def test_a_project_reader_sees_the_sweep_without_its_cancel_button(user):
    user.save()
    reader = UserFactory()
    project = projects.project_create(owner=user, name="shared")
    projects.member_set(project=project, user=reader, role="read")
    sweep = make_sweep(user, project=project)
    client = logged_in(reader)
    body = client.get(f"/dashboard/sweeps/{sweep.id}/").content.decode()
    assert "lr-search" in body and "cancel-sweep" not in body
    assert client.post(f"/dashboard/sweeps/{sweep.id}/cancel").status_code == 403


# Datasets ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_datasets_upload_through_the_api_with_the_session_and_csrf_list_versions_and_delete(
    user, other_user, local_storage
):
    user.save()
    strict = strict_client(user)
    token = token_of(strict, "/dashboard/datasets/")
    page = strict.get("/dashboard/datasets/").content.decode()
    assert 'id="upload-form"' in page and 'data-api="/api/v1/datasets"' in page and "dashboard/pages.js" in page

    def send(**headers):
        return strict.post(
            "/api/v1/datasets", {"file": SimpleUploadedFile("points.csv", CSV), "name": "points"}, headers=headers
        )

    assert send().status_code == 403  # the session alone is not enough: the XHR sends X-CSRFToken
    assert send(X_CSRFToken=token).status_code == 201
    assert send(X_CSRFToken=token).status_code == 201  # the same name: version 2
    body = strict.get("/dashboard/datasets/").content.decode()
    assert 'data-dataset="points@1"' in body and 'data-dataset="points@2"' in body and "(newest)" in body
    first = Dataset.objects.get(name="points", version=1)

    other = logged_in(other_user)
    assert other.post(f"/dashboard/datasets/{first.id}/delete").status_code == 404
    assert strict.post(f"/dashboard/datasets/{first.id}/delete").status_code == 403  # no token

    JobFactory(owner=user, status=Status.RUNNING, dataset="points", dataset_ref=first)
    refused = strict.post(f"/dashboard/datasets/{first.id}/delete", {"csrfmiddlewaretoken": token}, follow=True)
    assert "dataset &#x27;points&#x27; is used by a queued or running job" in refused.content.decode()
    Job.objects.filter(dataset_ref=first).update(status=Status.SUCCEEDED)
    done = strict.post(f"/dashboard/datasets/{first.id}/delete", {"csrfmiddlewaretoken": token}, follow=True)
    assert "Dataset points@1 deleted." in done.content.decode()
    assert list(Dataset.objects.values_list("version", flat=True)) == [2]


# Projects and tags -----------------------------------------------------------------------------


def test_projects_list_roles_counts_and_a_projects_jobs(web, user, other_user):
    mine = projects.project_create(owner=user, name="vision", description="cnn runs")
    theirs = projects.project_create(owner=other_user, name="nlp")
    projects.member_set(project=theirs, user=user, role="read")
    hidden = projects.project_create(owner=other_user, name="secret")
    job = JobFactory(owner=user, name="in-vision", project=mine)
    projects.tags_set(obj=job, names=["baseline"])
    JobFactory(owner=other_user, name="in-nlp", project=theirs)
    body = web.get("/dashboard/projects/").content.decode()
    assert 'data-project="vision"' in body and 'data-project="nlp"' in body and "secret" not in body
    assert "<td>owner</td>" in body and "<td>read</td>" in body
    assert '?tag=baseline"' in body and Tag.objects.filter(name="baseline").exists()
    detail = web.get(f"/dashboard/projects/{theirs.id}/").content.decode()
    assert "in-nlp" in detail and "in-vision" not in detail
    assert web.get(f"/dashboard/projects/{hidden.id}/").status_code == 404


# Model registry ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_registry_pages_show_versions_metrics_lineage_and_aliases(user, other_user, local_storage):
    user.save()
    job = finished_job(user)
    for epoch, acc in enumerate((0.5, 0.9, 0.7), start=1):
        EpochMetric.objects.create(
            job=job, epoch=epoch, train_loss=1, val_loss=1 - acc, val_accuracy=acc, samples=1, samples_per_s=1,
            duration_s=1,
        )  # fmt: skip
    model = registry.model_create(owner=user, name="iris-classifier", description="the best iris model")
    registry.version_create(model=model, job=job, source="best", epoch=None, description="first")
    registry.version_create(model=model, job=job, source="final", epoch=None, description="")
    registry.alias_set(model=model, name="champion", version=1)
    client = logged_in(user)
    listed = client.get("/dashboard/models/").content.decode()
    assert 'data-model="iris-classifier"' in listed and "champion → v1" in listed
    body = client.get("/dashboard/models/iris-classifier/").content.decode()
    assert 'data-version="1"' in body and 'data-version="2"' in body
    assert "90.0 %" in body and "best, epoch 2" in body and f"/dashboard/jobs/{job.id}/" in body
    assert "/api/v1/models/iris-classifier/versions/1/download" in body
    stranger = logged_in(other_user)
    assert stranger.get("/dashboard/models/iris-classifier/").status_code == 404


# Everywhere -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/dashboard/sweeps/", "/dashboard/datasets/", "/dashboard/projects/", "/dashboard/models/"]
)
def test_new_pages_need_login_and_link_the_favicon(client, web, path):
    anonymous = Client()
    assert anonymous.get(path).status_code == 302
    body = web.get(path).content.decode()
    assert 'rel="icon" type="image/svg+xml" href="/static/dashboard/favicon.svg"' in body
    for link in ("/dashboard/sweeps/", "/dashboard/datasets/", "/dashboard/projects/", "/dashboard/models/"):
        assert f'href="{link}"' in body
    assert web.get("/static/dashboard/favicon.svg").status_code == 200


# The submit form ---------------------------------------------------------------------------------


def test_the_submit_form_takes_tags_a_project_and_json_fields(web, user, django_capture_on_commit_callbacks):
    project = projects.project_create(owner=user, name="vision")
    page = web.get("/dashboard/submit/").content.decode()
    assert f'<option value="{project.id}">vision</option>' in page and "comma-separated" in page
    bad = web.post("/dashboard/submit/", {"model_type": "mlp", "dataset": "iris", "model_args": "{hidden: 8"})
    assert bad.status_code == 400 and "Not valid JSON" in bad.content.decode() and not Job.objects.exists()
    assert "{hidden: 8" in bad.content.decode()  # the text given stays in the form
    form = {
        "name": "organised", "model_type": "mlp", "dataset": "iris", "epochs": "1", "project": str(project.id),
        "tags": "baseline, lr-search", "model_args": "{}", "early_stopping": '{"metric": "val_loss", "patience": 2}',
    }  # fmt: skip
    with mock.patch("jobs.services.launch.job_launch"), django_capture_on_commit_callbacks(execute=True):
        response = web.post("/dashboard/submit/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    job = Job.objects.get(name="organised")
    assert job.project == project and sorted(job.tags.values_list("name", flat=True)) == ["baseline", "lr-search"]
    assert job.early_stopping["patience"] == 2
    refused = web.post("/dashboard/submit/", {**form, "tags": "no spaces allowed"})
    assert refused.status_code == 400 and "is not a tag" in refused.content.decode()


def test_the_submit_form_without_projects_offers_none_and_submits(web, django_capture_on_commit_callbacks):
    page = web.get("/dashboard/submit/").content.decode()
    assert 'value="None"' not in page and '<select name="project" id="id_project">' in page
    refused = web.post("/dashboard/submit/", {"model_type": "cnn", "dataset": "iris", "project": ""})
    assert (
        "cnn needs an image dataset" in refused.content.decode() and "Unknown project" not in refused.content.decode()
    )


def test_the_job_pages_spec_names_its_project_and_tags(web, user):
    project = projects.project_create(owner=user, name="vision")
    job = JobFactory(owner=user, project=project)
    projects.tags_set(obj=job, names=["baseline", "cpu"])
    body = web.get(f"/dashboard/jobs/{job.id}/").content.decode()
    assert "<th>tags</th><td>baseline, cpu</td>" in body and "<th>project</th><td>vision</td>" in body
    assert "Tag.None" not in body
