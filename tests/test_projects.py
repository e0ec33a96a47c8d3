"""Projects, members, tags and notes; who sees and who changes a project's jobs and sweeps;
the jobs list's filters and sort fields (issue 18, "Organise and find")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, Status
from tensorfleet_site.access.services import token_create
from tests.factories import JobFactory, UserFactory

JOB = {"model_type": "logreg", "dataset": "iris", "epochs": 2, "num_workers": 1, "threads": 1}


@pytest.fixture
def no_enqueue(monkeypatch):
    launched = []
    monkeypatch.setattr("jobs.services.launch.job_launch", launched.append)
    monkeypatch.setattr("jobs.orchestration.revoke", lambda ids: None)
    return launched


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user)}")
    return client


@pytest.fixture
def shared(api, user, db):
    """A project of ``user`` shared with a reader and a writer, and one job in it."""
    reader, writer, stranger = UserFactory(), UserFactory(), UserFactory()
    project = api.post("/api/v1/projects", {"name": "vision", "description": "cnn runs"}, format="json")
    assert project.status_code == 201, project.content
    pid = project.json()["id"]
    for member, role in ((reader, "read"), (writer, "write")):
        r = api.post(f"/api/v1/projects/{pid}/members", {"user": member.username, "role": role}, format="json")
        assert r.status_code == 200, r.content
    return {
        "id": pid,
        "reader": client_for(reader),
        "writer": client_for(writer),
        "stranger": client_for(stranger),
        "users": (reader, writer, stranger),
    }


@pytest.mark.django_db
def test_a_job_submitted_into_a_project_carries_its_project_tags_and_note(api, shared, no_enqueue):
    r = api.post(
        "/api/v1/jobs", {**JOB, "project": "vision", "tags": ["baseline", "iris"], "note": "first try"}, format="json"
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["project"] == shared["id"] and body["project_name"] == "vision"
    assert body["tags"] == ["baseline", "iris"] and body["note"] == "first try"
    job = Job.objects.get(id=body["id"])
    assert sorted(job.tags.values_list("name", flat=True)) == ["baseline", "iris"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"project": "nope"}, "project", "Unknown project 'nope'"),
        ({"tags": ["has space"]}, "tags", "is not a tag"),
        ({"tags": "baseline"}, "tags", "A list of tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags", "at most 20"),
        ({"note": "x" * 10001}, "note", "no more than 10000"),
    ],
)
def test_bad_project_tags_or_note_are_a_400_naming_the_field(api, no_enqueue, changes, field, message):
    r = api.post("/api/v1/jobs", {**JOB, **changes}, format="json")
    assert r.status_code == 400 and message in " ".join(r.json()[field]), r.content
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_members_see_a_projects_jobs_readers_cannot_change_them_writers_can(api, shared, no_enqueue):
    job_id = api.post("/api/v1/jobs", {**JOB, "project": shared["id"]}, format="json").json()["id"]
    reader, writer, stranger = shared["reader"], shared["writer"], shared["stranger"]

    assert reader.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert [j["id"] for j in reader.get("/api/v1/jobs").json()["results"]] == [job_id]
    assert stranger.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert stranger.get("/api/v1/jobs").json()["count"] == 0

    for method, path in (("post", "cancel"), ("post", "resume"), ("delete", ""), ("patch", "")):
        r = getattr(reader, method)(f"/api/v1/jobs/{job_id}/{path}".rstrip("/"), {"note": "mine"}, format="json")
        assert r.status_code == 403 and "read-only" in r.json()["detail"], (method, path, r.content)
    assert Job.objects.get(id=job_id).status == Status.QUEUED

    r = writer.patch(f"/api/v1/jobs/{job_id}", {"note": "looked at it"}, format="json")
    assert r.status_code == 200 and r.json()["note"] == "looked at it"
    assert writer.post(f"/api/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"


@pytest.mark.django_db
def test_a_reader_cannot_submit_into_the_project_a_writer_can(shared, no_enqueue):
    r = shared["reader"].post("/api/v1/jobs", {**JOB, "project": shared["id"]}, format="json")
    assert r.status_code == 400 and "read-only access" in r.json()["project"][0]
    r = shared["writer"].post("/api/v1/jobs", {**JOB, "project": "vision"}, format="json")
    assert r.status_code == 201 and r.json()["project"] == shared["id"]


@pytest.mark.django_db
def test_only_the_owner_manages_a_project_and_its_members(api, shared, user):
    pid, reader = shared["id"], shared["reader"]
    listed = reader.get("/api/v1/projects").json()["results"]
    assert [(p["name"], p["role"], p["owner"]) for p in listed] == [("vision", "read", user.username)]
    detail = api.get(f"/api/v1/projects/{pid}").json()
    assert detail["role"] == "owner" and sorted(m["role"] for m in detail["members"]) == ["read", "write"]

    assert reader.patch(f"/api/v1/projects/{pid}", {"name": "mine"}, format="json").status_code == 403
    assert reader.delete(f"/api/v1/projects/{pid}").status_code == 403
    stranger_name = shared["users"][2].username
    r = reader.post(f"/api/v1/projects/{pid}/members", {"user": stranger_name}, format="json")
    assert r.status_code == 403
    assert shared["stranger"].get(f"/api/v1/projects/{pid}").status_code == 404

    r = api.post(f"/api/v1/projects/{pid}/members", {"user": "ghost"}, format="json")
    assert r.status_code == 400 and "No user named 'ghost'" in r.json()["user"][0]
    r = api.post(f"/api/v1/projects/{pid}/members", {"user": user.username}, format="json")
    assert r.status_code == 400 and "owner" in r.json()["user"][0]
    r = api.post(f"/api/v1/projects/{pid}/members", {"user": stranger_name, "role": "admin"}, format="json")
    assert r.status_code == 400 and "read" in r.json()["role"][0]

    assert api.post("/api/v1/projects", {"name": "vision"}, format="json").status_code == 400  # name taken
    assert api.patch(f"/api/v1/projects/{pid}", {"description": "all cnn"}, format="json").status_code == 200

    reader_name = shared["users"][0].username
    assert reader.delete(f"/api/v1/projects/{pid}/members/{reader_name}").status_code == 204  # leaves
    assert reader.get(f"/api/v1/projects/{pid}").status_code == 404


@pytest.mark.django_db
def test_deleting_a_project_keeps_its_jobs(api, shared, no_enqueue):
    job_id = api.post("/api/v1/jobs", {**JOB, "project": "vision"}, format="json").json()["id"]
    assert api.delete(f"/api/v1/projects/{shared['id']}").status_code == 204
    assert api.get(f"/api/v1/jobs/{job_id}").json()["project"] is None
    assert shared["reader"].get(f"/api/v1/jobs/{job_id}").status_code == 404


@pytest.mark.django_db
def test_patch_changes_project_tags_and_note_only(api, user, shared, no_enqueue):
    job_id = api.post("/api/v1/jobs", {**JOB, "tags": ["a"]}, format="json").json()["id"]
    r = api.patch(f"/api/v1/jobs/{job_id}", {"project": "vision", "tags": ["b", "c"], "note": "n"}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["project"], r.json()["tags"], r.json()["note"]) == (shared["id"], ["b", "c"], "n")
    assert shared["reader"].get(f"/api/v1/jobs/{job_id}").status_code == 200  # moved into the shared project

    r = api.patch(f"/api/v1/jobs/{job_id}", {"epochs": 9, "note": "x"}, format="json")
    assert r.status_code == 400 and "Fixed at submission" in r.json()["epochs"][0]
    r = api.patch(f"/api/v1/jobs/{job_id}", {"colour": "red"}, format="json")
    assert r.status_code == 400 and "colour" in r.json()
    assert api.patch(f"/api/v1/jobs/{job_id}", {}, format="json").status_code == 400
    assert api.put(f"/api/v1/jobs/{job_id}", {"note": "x"}, format="json").status_code == 405
    r = api.patch(f"/api/v1/jobs/{job_id}", {"project": None}, format="json")
    assert r.status_code == 200 and r.json()["project"] is None and r.json()["note"] == "n"


@pytest.mark.django_db
def test_tags_are_listed_with_the_counts_a_user_sees(api, user, other_user, no_enqueue):
    api.post("/api/v1/jobs", {**JOB, "tags": ["baseline", "iris"]}, format="json")
    api.post("/api/v1/jobs", {**JOB, "tags": ["baseline"]}, format="json")
    client_for(other_user).post("/api/v1/jobs", {**JOB, "tags": ["secret"]}, format="json")
    rows = api.get("/api/v1/tags").json()["results"]
    assert rows == [{"name": "baseline", "jobs": 2, "sweeps": 0}, {"name": "iris", "jobs": 1, "sweeps": 0}]


# The jobs list: filters and sort fields ---------------------------------------------------------


@pytest.fixture
def listed(user, db):
    now = timezone.now()
    rows = {
        "a": JobFactory(owner=user, name="Digits CNN", model_type="cnn", dataset="digits", val_accuracy=0.9),
        "b": JobFactory(owner=user, name="iris mlp", model_type="mlp", status=Status.SUCCEEDED, val_accuracy=0.95),
        "c": JobFactory(owner=user, name="iris logreg", val_accuracy=None, train_loss=0.3),
        "d": JobFactory(owner=user, name="wine", dataset="wine", val_accuracy=0.5, train_loss=0.1),
    }
    for i, key in enumerate("abcd"):  # created a day apart, a first
        Job.objects.filter(id=rows[key].id).update(created_at=now - timedelta(days=4 - i))
    from jobs.services.projects import project_create, tags_set

    project = project_create(owner=user, name="p")
    Job.objects.filter(id__in=[rows["a"].id, rows["b"].id]).update(project=project)
    tags_set(obj=rows["a"], names=["x", "y"])
    tags_set(obj=rows["b"], names=["x"])
    return {key: str(job.id) for key, job in rows.items()}


def _names(api, listed, **params) -> list[str]:
    r = api.get("/api/v1/jobs", params)
    assert r.status_code == 200, r.content
    by_id = {v: k for k, v in listed.items()}
    return [by_id[j["id"]] for j in r.json()["results"]]


@pytest.mark.django_db
def test_the_jobs_list_filters_by_project_tag_model_dataset_status_name_and_time(api, listed):
    assert _names(api, listed) == ["d", "c", "b", "a"]  # newest first
    assert _names(api, listed, project="p") == ["b", "a"]
    assert _names(api, listed, tag="x") == ["b", "a"]
    assert _names(api, listed, tag="x,y") == ["a"]
    assert _names(api, listed, model="cnn") == ["a"]
    assert _names(api, listed, dataset="wine") == ["d"]
    assert _names(api, listed, status="succeeded") == ["b"]
    assert _names(api, listed, name="IRIS") == ["c", "b"]
    day = timezone.now() - timedelta(days=2, hours=12)
    assert _names(api, listed, created_after=day.isoformat()) == ["d", "c"]
    assert _names(api, listed, created_before=day.isoformat(), tag="x") == ["b", "a"]


@pytest.mark.django_db
def test_the_jobs_list_sorts_by_a_metric_or_a_time_with_empty_values_last(api, listed):
    assert _names(api, listed, ordering="-val_accuracy") == ["b", "a", "d", "c"]
    assert _names(api, listed, ordering="val_accuracy") == ["d", "a", "b", "c"]
    assert _names(api, listed, ordering="train_loss") == ["d", "c", "b", "a"]  # ties: newest first
    assert _names(api, listed, ordering="created_at") == ["a", "b", "c", "d"]
    assert _names(api, listed, ordering="-created_at,val_accuracy") == ["d", "c", "b", "a"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"ordering": "colour"}, "ordering", "sort by one of: created_at, finished_at, val_accuracy"),
        ({"ordering": "-val_accuracy,owner"}, "ordering", "Unknown sort field 'owner'"),
        ({"ordering": ""}, "ordering", "Unknown sort field"),
        ({"model_type": "cnn"}, "model_type", "this endpoint takes: created_after, created_before, dataset"),
        ({"status": "done"}, "status", "not one of the available choices"),
        ({"created_after": "yesterday"}, "created_after", "valid date"),
        ({"tag": "a b"}, "tag", "is not a tag"),
    ],
)
def test_an_unknown_filter_or_sort_field_is_a_400_listing_the_valid_ones(api, listed, params, field, message):
    r = api.get("/api/v1/jobs", params)
    assert r.status_code == 400 and message in " ".join(r.json()[field]), r.content


# Sweeps in a project ----------------------------------------------------------------------------

SWEEP = {
    "name": "lr",
    "base": {"model_type": "logreg", "dataset": "iris", "epochs": 2, "num_workers": 1, "threads": 1},
    "space": {"learning_rate": {"log_uniform": [1e-3, 0.3]}},
    "trials": 3,
    "max_concurrent": 2,
}


@pytest.mark.django_db
def test_a_sweeps_trials_take_its_project_and_tags_and_readers_cannot_cancel_it(api, shared, no_enqueue):
    r = api.post("/api/v1/sweeps", {**SWEEP, "project": "vision", "tags": ["lr-search"], "note": "n"}, format="json")
    assert r.status_code == 201, r.content
    sweep = r.json()
    assert (sweep["project"], sweep["tags"], sweep["note"]) == (shared["id"], ["lr-search"], "n")
    trials = Job.objects.filter(sweep_id=sweep["id"])
    assert trials.count() == 2 and {str(t.project_id) for t in trials} == {shared["id"]}
    assert all(list(t.tags.values_list("name", flat=True)) == ["lr-search"] for t in trials)

    reader = shared["reader"]
    assert reader.get(f"/api/v1/sweeps/{sweep['id']}").status_code == 200
    assert reader.get("/api/v1/jobs", {"sweep": sweep["id"]}).json()["count"] == 2
    assert reader.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 403
    assert shared["stranger"].get(f"/api/v1/sweeps/{sweep['id']}").status_code == 404
    assert api.get("/api/v1/sweeps", {"tag": "lr-search"}).json()["count"] == 1

    r = api.patch(f"/api/v1/sweeps/{sweep['id']}", {"project": None}, format="json")
    assert r.status_code == 200 and not trials.filter(project__isnull=False).exists()  # trials moved along
    assert reader.get(f"/api/v1/sweeps/{sweep['id']}").status_code == 404


@pytest.mark.django_db
def test_project_tags_and_note_are_the_sweeps_not_searched_nor_in_base(api, no_enqueue):
    r = api.post("/api/v1/sweeps", {**SWEEP, "space": {"tags": {"choice": [["a"], ["b"]]}}}, format="json")
    assert r.status_code == 400
    r = api.post("/api/v1/sweeps", {**SWEEP, "base": {**SWEEP["base"], "note": "x"}}, format="json")
    assert r.status_code == 400 and "Give note on the sweep itself" in str(r.json()["base"])


@pytest.mark.django_db
def test_the_dashboard_refuses_a_reader_the_cancel_button(client, shared, no_enqueue, user):
    job = JobFactory(owner=user)
    Job.objects.filter(id=job.id).update(project_id=shared["id"])
    reader = shared["users"][0]
    reader.save()  # UserFactory does not save the password a session checks
    client.force_login(reader)
    assert client.get(f"/dashboard/jobs/{job.id}/").status_code == 200
    assert client.post(f"/dashboard/jobs/{job.id}/cancel").status_code == 403
    assert Job.objects.get(id=job.id).status == Status.QUEUED


@pytest.mark.django_db
def test_registered_models_take_tags_and_a_note_and_the_list_filters_by_tag(api):
    r = api.post(
        "/api/v1/models", {"name": "digits-cnn", "description": "the prod one", "tags": ["prod"]}, format="json"
    )
    assert r.status_code == 201 and r.json()["tags"] == ["prod"], r.content
    api.post("/api/v1/models", {"name": "other"}, format="json")
    assert [m["name"] for m in api.get("/api/v1/models", {"tag": "prod"}).json()["results"]] == ["digits-cnn"]
    r = api.patch("/api/v1/models/digits-cnn", {"tags": ["prod", "v2"]}, format="json")
    assert r.status_code == 200 and r.json()["tags"] == ["prod", "v2"] and r.json()["description"] == "the prod one"
    r = api.patch("/api/v1/models/digits-cnn", {"tags": ["bad tag"]}, format="json")
    assert r.status_code == 400 and "is not a tag" in r.json()["tags"][0]
    assert api.patch("/api/v1/models/digits-cnn", {}, format="json").status_code == 400
