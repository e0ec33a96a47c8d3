"""The web dashboard (/dashboard/) with Django's test client: login, pages, the submit
form (its messages come from JobCreateSerializer), ownership and cancel."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from jobs.models import EpochMetric, Job, Status
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker():
    """The overview asks the broker for workers; these tests do not need one."""
    with mock.patch("monitoring_app.overview._online_workers", return_value=[]):
        yield


@pytest.fixture(autouse=True)
def saved_password(user):
    """UserFactory sets the password without saving it; a session checks it against the row."""
    user.save()


@pytest.fixture
def web(client, user):
    client.force_login(user)
    return client


def test_root_redirects_to_dashboard(client):
    assert client.get("/").headers["Location"] == "/dashboard/"


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/jobs/", "/dashboard/submit/", "/dashboard/compare"])
def test_pages_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/?next=")


def test_login_page_logs_in(client, user):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": user.username, "password": "pw-for-tests"})
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/"


def test_overview_shows_cards_and_recent_jobs(web, user):
    JobFactory(owner=user, status=Status.RUNNING, name="mine-running")
    JobFactory(owner=user, status=Status.QUEUED)
    JobFactory(owner=user, status=Status.SUCCEEDED, finished_at="2000-01-01T00:00:00Z")  # not in the last 24 h
    from django.utils import timezone

    JobFactory(owner=user, status=Status.SUCCEEDED, finished_at=timezone.now())
    JobFactory(name="someone-elses")
    response = web.get("/dashboard/")
    assert response.status_code == 200
    assert response.context["cards"] == {"running": 1, "queued": 1, "succeeded_24h": 1, "workers_online": 0}
    body = response.content.decode()
    assert "mine-running" in body and "someone-elses" not in body
    assert "dashboard/dashboard.js" in body


def test_overview_json_for_the_live_cards(web, user, client):
    JobFactory(owner=user, status=Status.RUNNING)
    body = web.get("/api/v1/dashboard/overview").json()
    assert body["cards"]["running"] == 1 and len(body["jobs"]) == 1
    client.logout()
    assert client.get("/api/v1/dashboard/overview").status_code in (401, 403)


def test_jobs_page_filters_by_status_and_hides_owner_column_from_non_staff(web, user):
    JobFactory(owner=user, status=Status.RUNNING, name="alpha")
    JobFactory(owner=user, status=Status.FAILED, name="beta")
    body = web.get("/dashboard/jobs/?status=failed").content.decode()
    assert "beta" in body and "alpha" not in body and "<th>Owner</th>" not in body
    assert "/cancel" not in body  # no cancel button for a failed job
    body = web.get("/dashboard/jobs/").content.decode()
    assert "alpha" in body and reverse("dashboard:job-cancel", args=[Job.objects.get(name="alpha").id]) in body


def test_staff_see_every_job_with_its_owner(client):
    staff = get_user_model().objects.create_user("boss", password="x", is_staff=True)
    job = JobFactory(name="a-users-job")
    client.force_login(staff)
    body = client.get("/dashboard/jobs/").content.decode()
    assert "a-users-job" in body and "<th>Owner</th>" in body and job.owner.username in body
    assert client.get(f"/dashboard/jobs/{job.id}/").status_code == 200


def test_job_detail_renders_metrics_tasks_spec_and_error(web, user):
    job = JobFactory(owner=user, status=Status.FAILED, completed_epochs=1, error="boom", error_class="user_error")
    EpochMetric.objects.create(
        job=job, epoch=1, train_loss=1.0, val_loss=0.9, val_accuracy=0.5, samples=10, samples_per_s=5, duration_s=2
    )
    job.tasks.create(epoch=1, shard=0, status=Status.SUCCEEDED, worker="w1@host", duration_s=1.5)
    response = web.get(f"/dashboard/jobs/{job.id}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "boom" in body and "w1@host" in body and "learning_rate" in body
    assert 'id="metrics-data"' in body and "dashboard/chart.umd.min.js" in body
    assert reverse("dashboard:job-resume", args=[job.id]) in body  # failed with epochs left: resumable


def test_other_users_job_is_404(web, other_user):
    job = JobFactory(owner=other_user)
    assert web.get(f"/dashboard/jobs/{job.id}/").status_code == 404
    assert web.post(f"/dashboard/jobs/{job.id}/cancel").status_code == 404
    assert web.get(f"/dashboard/compare?jobs={job.id}").status_code == 404
    assert web.get(f"/dashboard/jobs/{uuid.uuid4()}/").status_code == 404
    assert Job.objects.get(id=job.id).status == Status.QUEUED


def test_cancel_button_cancels_and_csrf_is_enforced(user):
    from django.test import Client

    job = JobFactory(owner=user, status=Status.RUNNING)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(f"/dashboard/jobs/{job.id}/cancel").status_code == 403
    page = strict.get(f"/dashboard/jobs/{job.id}/")
    token = page.cookies["csrftoken"].value
    response = strict.post(f"/dashboard/jobs/{job.id}/cancel", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response.headers["Location"] == f"/dashboard/jobs/{job.id}/"
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    again = strict.post(f"/dashboard/jobs/{job.id}/cancel", {"csrfmiddlewaretoken": token}, follow=True)
    assert "job is already cancelled" in again.content.decode()


def test_cancel_only_redirects_to_local_next(web, user):
    job = JobFactory(owner=user, status=Status.RUNNING)
    response = web.post(f"/dashboard/jobs/{job.id}/cancel", {"next": "https://evil.example/"})
    assert response.headers["Location"] == f"/dashboard/jobs/{job.id}/"


def test_resume_restarts_a_cancelled_job(web, user, django_capture_on_commit_callbacks):
    # One epoch of one round recorded (a job without rounds counts its epochs as rounds).
    job = JobFactory(owner=user, status=Status.CANCELLED, completed_epochs=1, completed_rounds=1)
    with mock.patch("jobs.services.launch.epoch_launch") as launch, django_capture_on_commit_callbacks(execute=True):
        response = web.post(f"/dashboard/jobs/{job.id}/resume")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Status.RUNNING
    launch.assert_called_once_with(job.id, 2)


def test_submit_page_lists_builtin_and_own_datasets(web):
    body = web.get("/dashboard/submit/").content.decode()
    for name in ("digits", "iris", "synthetic"):
        assert f'<option value="{name}"' in body
    assert 'name="learning_rate"' in body and 'name="csrfmiddlewaretoken"' in body


def test_submit_shows_the_serializers_field_messages(web):
    from jobs.serializers import JobCreateSerializer

    data = {"model_type": "cnn", "dataset": "iris", "epochs": "0", "learning_rate": "0.01"}
    expected = JobCreateSerializer(data={k: v for k, v in data.items()}, context={"owner": None})
    assert not expected.is_valid()
    response = web.post("/dashboard/submit/", data)
    assert response.status_code == 400
    body = response.content.decode()
    for messages in expected.errors.values():
        for message in messages:
            assert str(message).replace("'", "&#x27;") in body
    assert "Ensure this value is greater than or equal to 1." in body
    assert not Job.objects.exists()
    # a cross-field message from JobCreateSerializer.validate
    body = web.post("/dashboard/submit/", {"model_type": "cnn", "dataset": "iris"}).content.decode()
    assert "cnn needs an image dataset" in body
    # the values given stay in the form
    assert 'value="0.01"' in web.post("/dashboard/submit/", data).content.decode()


def test_submit_creates_the_job_and_redirects_to_it(web, user, django_capture_on_commit_callbacks):
    with mock.patch("jobs.services.launch.job_launch") as launch, django_capture_on_commit_callbacks(execute=True):
        response = web.post(
            "/dashboard/submit/",
            {
                "name": "from-form",
                "model_type": "mlp",
                "dataset": "iris",
                "epochs": "2",
                "num_workers": "2",
                "threads": "",
            },
        )
    job = Job.objects.get(name="from-form")
    assert response.status_code == 302 and response.headers["Location"] == f"/dashboard/jobs/{job.id}/"
    launch.assert_called_once_with(job.id)
    assert job.owner == user and job.epochs == 2 and job.total_tasks == 4 and job.learning_rate == 1e-3


def test_compare_page_puts_curves_and_specs_side_by_side(web, user):
    a = JobFactory(owner=user, name="job-a", learning_rate=0.1)
    b = JobFactory(owner=user, name="job-b", learning_rate=0.01)
    for job, acc in ((a, 0.5), (b, 0.7)):
        EpochMetric.objects.create(
            job=job, epoch=1, train_loss=1, val_loss=1, val_accuracy=acc, samples=1, samples_per_s=1, duration_s=1
        )
    response = web.get(f"/dashboard/compare?jobs={a.id},{b.id}")
    assert response.status_code == 200
    assert [s["points"] for s in response.context["series"]] == [[{"x": 1, "y": 0.5}], [{"x": 1, "y": 0.7}]]
    body = response.content.decode()
    assert "job-a" in body and "job-b" in body and "0.01" in body and 'id="compare-chart"' in body
    assert web.get("/dashboard/compare").status_code == 200


def test_flower_and_grafana_links_only_when_set(web, settings):
    settings.FLOWER_URL, settings.GRAFANA_URL = "", ""
    body = web.get("/dashboard/jobs/").content.decode()
    assert "Flower" not in body and "Grafana" not in body and "/api/docs/" in body
    settings.FLOWER_URL, settings.GRAFANA_URL = "http://flower.example", "http://grafana.example"
    body = web.get("/dashboard/jobs/").content.decode()
    assert 'href="http://flower.example"' in body and 'href="http://grafana.example"' in body


def test_chartjs_is_vendored_and_served(web):
    response = web.get("/static/dashboard/chart.umd.min.js")
    assert response.status_code == 200
