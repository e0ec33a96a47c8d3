"""A job's own validation data (spec field ``validation``): a fraction of its dataset
held out by its seed, or another of the user's datasets with the same features and
classes, against which the whole training dataset trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

from jobs.models import Job
from jobs.services import lifecycle
from jobs.specs import SpecInvalid, job_spec_validate
from storage_app.blobs import blob_read
from storage_app.formats import load_file
from tests.datagen import blobs, write_csv
from tests.test_tabular_formats import SPECIES
from tests.test_upload_hardening import upload
from workers.splits import build_split, job_split
from workers.weights import checkpoint_class_names, load_checkpoint


def species_csv(rows, names=SPECIES) -> bytes:
    iris = load_iris()
    lines = ["a,b,c,d,species"] + [",".join(map(str, iris.data[i])) + "," + names[iris.target[i]] for i in rows]
    return ("\n".join(lines) + "\n").encode()


def split_rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(150)
    return order[:110], order[110:]


@pytest.fixture
def iris_pair(api, local_storage):
    """Iris as two uploads: 110 rows to train on, 40 others to validate on."""
    train, val = split_rows()
    a = upload(api, species_csv(train), "train.csv", name="iris-train", label_column="species").json()
    b = upload(api, species_csv(val), "val.csv", name="iris-val", label_column="species").json()
    return a, b


def spec(**fields) -> dict:
    return {"model_type": "mlp", "dataset": "iris-train", "num_workers": 2, "epochs": 4, "seed": 3, **fields}


# --- the spec ----------------------------------------------------------------------------


def test_the_default_is_the_80_20_split_of_before():
    """The same permutation and cut as every job had before it could choose."""
    iris = load_iris()
    g = torch.Generator().manual_seed(3)
    perm = torch.randperm(150, generator=g)
    split = build_split("iris", seed=3)
    assert torch.equal(split.y_val, torch.tensor(iris.target)[perm[120:]])
    assert len(split.x_train) == 120 and len(split.x_val) == 30


def test_a_fraction_holds_out_that_share_by_the_seed(user, iris_pair):
    job = lifecycle.job_create(owner=user, spec=job_spec_validate(owner=user, data=spec(validation=0.3)))
    assert (job.validation_fraction, job.validation_ref, job.validation) == (0.3, None, 0.3)
    split = job_split(Job.objects.get(id=job.id))
    assert (len(split.x_train), len(split.x_val)) == (int(0.7 * 110), 110 - int(0.7 * 110))
    again = job_split(Job.objects.get(id=job.id))
    assert torch.equal(split.x_val, again.x_val)
    default = lifecycle.job_create(owner=user, spec=job_spec_validate(owner=user, data=spec()))
    assert default.validation_fraction == 0.2 and len(job_split(default).x_val) == 110 - 88


def test_a_fraction_given_as_text_is_a_fraction(user, iris_pair):
    assert job_spec_validate(owner=user, data=spec(validation="0.25"))["validation"] == 0.25


@pytest.mark.parametrize(
    "value, reason",
    [
        (0, "more than 0 and at most 0.9"),
        (0.95, "more than 0 and at most 0.9"),
        (-0.1, "more than 0 and at most 0.9"),
        ("nan", "more than 0 and at most 0.9"),
        (True, "Give a fraction"),
        ([0.2], "Give a fraction"),
        ("", "Give a fraction"),
        ("nope", "Unknown dataset 'nope'"),
        ("iris", "built-in dataset"),
    ],
)
def test_a_bad_validation_is_a_400_naming_it(api, iris_pair, value, reason):
    r = api.post("/api/v1/jobs", spec(validation=value), format="json")
    assert r.status_code == 400, r.content
    assert reason in " ".join(r.json()["validation"]), r.json()


def test_a_fraction_that_leaves_nothing_to_train_on_is_refused(user, api, local_storage):
    upload(api, b"a,label\n1,0\n2,1\n3,0\n4,1\n", "tiny.csv")
    with pytest.raises(SpecInvalid, match="leaves nothing to train or validate on of 4 samples"):
        job_spec_validate(owner=user, data=spec(dataset="tiny", validation=0.9))


def test_a_validation_dataset_is_stored_with_the_job(user, iris_pair):
    _, val = iris_pair
    for reference in ("iris-val", val["id"]):
        job = lifecycle.job_create(owner=user, spec=job_spec_validate(owner=user, data=spec(validation=reference)))
        assert str(job.validation_ref_id) == val["id"] and job.validation_sha256 == val["sha256"]
        assert job.validation_fraction == 0.0 and job.validation == val["id"]
        assert job.class_names == SPECIES


def test_a_mismatched_validation_dataset_is_a_400_naming_what_differs(api, user, iris_pair, tmp_path):
    train, val = split_rows()
    x, y = blobs(60, 5, 3)
    upload(api, write_csv(tmp_path / "five.csv", x, y).read_bytes(), "five.csv")
    x4, y4 = blobs(60, 4, 4)
    upload(api, write_csv(tmp_path / "four.csv", x4, y4).read_bytes(), "four.csv")
    renamed = ["setosa", "versicolor", "virginica-2"]
    upload(api, species_csv(val, renamed), "renamed.csv", label_column="species")
    upload(api, species_csv(train), "same.csv", label_column="species")
    cases = {
        "five": "features [4] in 'iris-train' and [5] in 'five'",
        "four": "3 classes in 'iris-train' and 4 in 'four'",
        "renamed": "class 2 is 'virginica' in 'iris-train' and 'virginica-2' in 'renamed'",
        "same": "'same' holds the same data as 'iris-train'",
    }
    for name, reason in cases.items():
        r = api.post("/api/v1/jobs", spec(validation=name), format="json")
        assert r.status_code == 400 and reason in r.json()["validation"][0], (name, r.json())
    assert not Job.objects.exists()


def test_another_users_dataset_cannot_validate(api, other_user, iris_pair):
    from rest_framework.test import APIClient

    from tensorfleet_site.access.services import token_create

    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=other_user)}")
    r = theirs.post("/api/v1/jobs", spec(dataset="iris", validation=iris_pair[1]["id"]), format="json")
    assert r.status_code == 400 and "Unknown dataset" in r.json()["validation"][0]


def test_a_validation_dataset_in_use_cannot_be_deleted(api, user, iris_pair):
    _, val = iris_pair
    lifecycle.job_create(owner=user, spec=job_spec_validate(owner=user, data=spec(validation="iris-val")))
    assert api.delete(f"/api/v1/datasets/{val['id']}").status_code == 409


# --- training against it -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_validates_on_its_validation_dataset(
    api, user, eager_celery, iris_pair, local_storage, django_capture_on_commit_callbacks
):
    train, val = iris_pair
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post("/api/v1/jobs", spec(validation="iris-val"), format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        second = api.post("/api/v1/jobs", spec(validation=val["id"]), format="json").json()
    jobs = [Job.objects.get(id=j["id"]) for j in (first, second)]
    assert [j.status for j in jobs] == ["succeeded", "succeeded"], jobs[0].error
    split = job_split(jobs[0])
    assert len(split.x_train) == 110 and len(split.x_val) == 40  # the whole training dataset trains
    xt, _ = load_file(local_storage / Job.objects.get(id=first["id"]).dataset_ref.file.name, "csv", "species")
    xv, yv = load_file(local_storage / jobs[0].validation_ref.file.name, "csv", "species")
    mean, std = torch.from_numpy(xt).mean(0), torch.from_numpy(xt).std(0).clamp_min(1e-6)
    assert torch.allclose(split.x_val, (torch.from_numpy(xv) - mean) / std) and torch.equal(
        split.y_val, torch.from_numpy(yv)
    )
    finals = [blob_read(j.checkpoints.get(kind="final").file.name) for j in jobs]
    assert finals[0] == finals[1]  # the same spec twice: bit-identical
    model = load_checkpoint(finals[0])
    with torch.no_grad():
        accuracy = (model(split.x_val).argmax(1) == split.y_val).float().mean().item()
    assert accuracy == pytest.approx(jobs[0].val_accuracy) and accuracy > 0.8
    assert checkpoint_class_names(finals[0]) == SPECIES
    assert api.get(f"/api/v1/jobs/{first['id']}").json()["class_names"] == SPECIES


@pytest.mark.django_db(transaction=True)
def test_a_built_in_dataset_trains_whole_against_an_uploaded_one(
    api, eager_celery, iris_pair, local_storage, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/jobs", spec(dataset="iris", validation="iris-val"), format="json")
    assert created.status_code == 201, created.content
    job = Job.objects.get(id=created.json()["id"])
    assert job.status == "succeeded", job.error
    split = job_split(job)
    assert (len(split.x_train), len(split.x_val)) == (150, 40) and job.val_accuracy > 0.8
