"""Models from plugins: the registry reads builders' signatures, workers publish what
they can build, the API lists it and refuses a spec its workers cannot build, and a
plugin's model trains and comes back from its checkpoint alone."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from types import SimpleNamespace
from typing import Literal

import pytest
import torch
from rest_framework.test import APIClient

from jobs.model_schemas import model_args_check
from jobs.models import Job, ModelOffer, Status
from jobs.services import architectures, lifecycle
from jobs.specs import SpecInvalid, job_spec_validate
from storage_app.blobs import blob_read
from tests.conftest import TEST_PROCESS_WORKER
from workers import plugins, publishing
from workers.splits import build_split
from workers.weights import checkpoint_bytes, checkpoint_config, load_checkpoint, model_config

# ----------------------------------------------------------------- the registry


def test_the_example_plugin_is_registered_with_its_signature_as_schema():
    entry = plugins.entries()["tinynet"]
    assert entry.source.startswith("tensorfleet-example-plugin 0.1.0: tensorfleet_example_plugin:build")
    assert entry.input_kind == "any"
    assert entry.arguments == {
        "hidden": {"type": "int", "default": 64, "required": False},
        "dropout": {"type": "float", "default": 0.0, "required": False},
        "channels": {"type": "int", "default": 16, "required": False},
        "activation": {"type": "str", "default": "relu", "required": False, "choices": ["relu", "gelu", "tanh"]},
    }
    assert plugins.problems() == ()


def builder_of_every_kind(
    input_shape,
    num_classes,
    width: int,
    scale: float = 1.0,
    flag: bool = False,
    mode: Literal["a", "b"] = "a",
    sizes: tuple[int, ...] = (1, 2),
    label: str | None = None,
    guessed=3,
    layer: torch.nn.Module | None = None,
    **extra,
):
    """First line of the description.

    Not this paragraph."""
    return torch.nn.Linear(1, num_classes)


def test_a_builders_signature_becomes_its_arguments_schema():
    arguments, kind, description = plugins.describe(builder_of_every_kind)
    assert arguments == {
        "width": {"type": "int", "default": None, "required": True},
        "scale": {"type": "float", "default": 1.0, "required": False},
        "flag": {"type": "bool", "default": False, "required": False},
        "mode": {"type": "str", "default": "a", "required": False, "choices": ["a", "b"]},
        "sizes": {"type": "list[int]", "default": [1, 2], "required": False},
        "label": {"type": "str", "default": None, "required": False, "nullable": True},
        "guessed": {"type": "int", "default": 3, "required": False},
    }  # `layer` has a type a spec cannot write and a default: not settable; **extra: not part of it
    assert (kind, description) == ("any", "First line of the description.")


def needs_a_module(input_shape, num_classes, layer: torch.nn.Module):
    return layer


def one_argument(input_shape):
    return torch.nn.Identity()


def images_only(input_shape, num_classes):
    return torch.nn.Flatten()


images_only.input_kind = "pixels"


@pytest.mark.parametrize(
    "builder, message",
    [
        (needs_a_module, "argument 'layer' has no default"),
        (one_argument, r"takes \(input_shape, num_classes, \*\*model_args\)"),
        (images_only, "input_kind 'pixels'"),
        ("not callable", "not callable"),
    ],
)
def test_what_cannot_be_a_builder_is_refused(builder, message):
    with pytest.raises(plugins.BuilderInvalid, match=message):
        plugins.describe(builder)


def not_a_module(input_shape, num_classes):
    return "a string"


def test_a_broken_plugin_is_left_out_with_the_reason_and_the_others_stay(monkeypatch):
    group = plugins.GROUP
    fake = [
        EntryPoint("good", f"{__name__}:builder_of_every_kind", group),
        EntryPoint("broken", "no_such_module_here:build", group),
        EntryPoint("bad name!", f"{__name__}:images_only", group),
        EntryPoint("wrong", f"{__name__}:needs_a_module", group),
        EntryPoint("stringy", f"{__name__}:not_a_module", group),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: fake)
    plugins.reload()
    try:
        assert sorted(plugins.entries()) == ["good", "stringy"]
        problems = "\n".join(plugins.problems())
        assert "'broken'" in problems and "ModuleNotFoundError" in problems
        assert "'bad name!'" in problems and "'wrong'" in problems
        with pytest.raises(plugins.BuilderInvalid, match="not a torch.nn.Module"):
            plugins.build("stringy", (1,), 2)
        with pytest.raises(plugins.UnknownModel, match="unknown model 'cnn'; this worker builds good, stringy"):
            plugins.build("cnn", (1, 8, 8), 2)
    finally:
        monkeypatch.undo()
        plugins.reload()
    assert "cnn" in plugins.entries()


# ----------------------------------------------------------------- the schema check


@pytest.mark.parametrize(
    "given, cleaned, errors",
    [
        ({}, {}, ["'width': required by m (int)."]),
        ({"width": 2, "scale": 3}, {"width": 2, "scale": 3.0}, []),  # an int is a float
        ({"width": True}, {}, ["'width': m takes int, not True."]),  # a bool is not an int
        ({"width": 2.5}, {}, ["'width': m takes int, not 2.5."]),
        ({"width": 1, "mode": "c"}, {"width": 1}, ["'mode': m takes str (one of 'a', 'b'), not 'c'."]),
        ({"width": 1, "sizes": [1, "2"]}, {"width": 1}, ["'sizes': m takes list[int], not [1, '2']."]),
        ({"width": 1, "label": None}, {"width": 1, "label": None}, []),
        (
            {"width": 1, "widht": 2},
            {"width": 1},
            ["'widht': unknown argument; m takes flag, guessed, label, mode, scale, sizes, width."],
        ),  # fmt: skip
    ],
)
def test_model_args_are_checked_against_the_schema(given, cleaned, errors):
    schema, _, _ = plugins.describe(builder_of_every_kind)
    assert model_args_check(schema, given, model="m") == (cleaned, errors)


# ----------------------------------------------------------------- publishing


def fake_worker(hostname: str, queues: list[str]):
    """What Celery hands worker_ready and worker_shutdown: its consumer or worker, of which
    the handlers read the name and the queues consumed."""
    return SimpleNamespace(hostname=hostname, app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(
        consume_from={q: object() for q in queues}))))  # fmt: skip


@pytest.mark.django_db
def test_a_worker_publishes_its_models_for_its_training_queues_and_withdraws_them():
    publishing.on_worker_ready(sender=fake_worker("w9@host", ["gpu", "control"]))
    mine = ModelOffer.objects.filter(worker="w9@host")
    assert set(mine.values_list("queue", flat=True)) == {"gpu"}  # control trains nothing
    assert set(mine.values_list("name", flat=True)) == set(plugins.entries())
    resnet = mine.get(name="resnet18")
    assert resnet.input_kind == "images" and resnet.arguments["stem"]["choices"] == ["auto", "small", "imagenet"]

    # A restart under the same name replaces its rows.
    architectures.offers_publish(worker="w9@host", queues=["gpu"], offers=[plugins.entries()["mlp"].offer()])
    assert list(ModelOffer.objects.filter(worker="w9@host").values_list("name", flat=True)) == ["mlp"]
    publishing.on_worker_shutdown(sender=fake_worker("w9@host", ["gpu"]))
    assert not ModelOffer.objects.filter(worker="w9@host").exists()
    assert ModelOffer.objects.filter(worker=TEST_PROCESS_WORKER).exists()  # the others stay


# ----------------------------------------------------------------- the API


def test_architectures_list_every_model_with_its_arguments_and_queues(api):
    ModelOffer.objects.filter(queue="gpu", name="tinynet").delete()
    r = api.get("/api/v1/architectures")
    assert r.status_code == 200, r.content
    by_name = {m["name"]: m for m in r.json()["results"]}
    assert set(by_name) == set(plugins.entries()) and r.json()["count"] == len(by_name)
    assert by_name["tinynet"]["queues"] == ["cpu"]
    assert by_name["resnet18"]["queues"] == ["cpu", "gpu"]
    assert by_name["resnet18"]["input_kind"] == "images"
    assert by_name["tinynet"]["arguments"]["hidden"] == {"type": "int", "default": 64, "required": False}
    one = api.get("/api/v1/architectures/tinynet")
    assert one.status_code == 200 and one.json()["entry_point"].startswith("tensorfleet-example-plugin")
    assert api.get("/api/v1/architectures/nothing").status_code == 404


@pytest.mark.django_db
def test_architectures_need_credentials():
    assert APIClient().get("/api/v1/architectures").status_code == 401


# ----------------------------------------------------------------- the spec

SPEC = {"model_type": "tinynet", "dataset": "digits", "num_workers": 2, "epochs": 3}


@pytest.fixture
def no_enqueue(monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job: None)


@pytest.mark.parametrize(
    "model_args, message",
    [
        ({"hiden": 32}, "'hiden': unknown argument; tinynet takes activation, channels, dropout, hidden."),
        ({"hidden": "32"}, "'hidden': tinynet takes int, not '32'."),
        ({"activation": "swish"}, "'activation': tinynet takes str (one of 'relu', 'gelu', 'tanh'), not 'swish'."),
    ],
)
def test_bad_model_args_are_a_400_naming_the_argument(api, no_enqueue, model_args, message):
    r = api.post("/api/v1/jobs", {**SPEC, "model_args": model_args}, format="json")
    assert r.status_code == 400 and r.json() == {"model_args": [message]}
    assert not Job.objects.exists()


def test_model_args_are_stored_as_given_ints_as_floats_where_floats_are_taken(api, no_enqueue):
    r = api.post("/api/v1/jobs", {**SPEC, "model_args": {"hidden": 32, "dropout": 0}}, format="json")
    assert r.status_code == 201, r.content
    job = Job.objects.get()
    assert job.model_args == {"hidden": 32, "dropout": 0.0}
    assert job.model_config["model_args"] == {"hidden": 32, "dropout": 0.0}


def test_a_model_the_queues_workers_lack_is_refused_naming_what_they_have(api, no_enqueue):
    ModelOffer.objects.filter(queue="gpu").exclude(name__in=["mlp", "cnn"]).delete()
    r = api.post("/api/v1/jobs", {**SPEC, "queue": "gpu"}, format="json")
    assert r.status_code == 400
    assert r.json() == {
        "model_type": ["No worker on queue 'gpu' can build 'tinynet' (workers on cpu can). Queue 'gpu' has: cnn, mlp."]
    }


def test_a_model_no_worker_publishes_is_unknown(api, no_enqueue):
    r = api.post("/api/v1/jobs", {**SPEC, "model_type": "resnet"}, format="json")
    assert r.status_code == 400 and r.json()["model_type"][0].startswith("Unknown model 'resnet': no worker publishes")


def test_a_queue_no_worker_has_published_for_accepts_a_known_model(api, no_enqueue):
    ModelOffer.objects.filter(queue="gpu").delete()
    r = api.post("/api/v1/jobs", {**SPEC, "queue": "gpu", "model_args": {"hidden": 8}}, format="json")
    assert r.status_code == 201, r.content
    bad = api.post("/api/v1/jobs", {**SPEC, "queue": "gpu", "model_args": {"hidden": 0.5}}, format="json")
    assert bad.status_code == 400 and "'hidden'" in bad.json()["model_args"][0]  # the schema from another queue


def test_before_any_worker_publishes_only_the_projects_models_are_known(user):
    ModelOffer.objects.all().delete()
    spec = job_spec_validate(owner=user, data={"model_type": "resnet18", "dataset": "digits"})
    assert spec["model_type"] == "resnet18"
    with pytest.raises(SpecInvalid, match="Unknown model 'tinynet': no worker has published its models yet"):
        job_spec_validate(owner=user, data=SPEC)
    with pytest.raises(SpecInvalid, match="resnet18 needs an image dataset; 'iris' is tabular"):
        job_spec_validate(owner=user, data={"model_type": "resnet18", "dataset": "iris"})


def test_the_input_kind_rule_follows_the_published_model(user):
    with pytest.raises(SpecInvalid, match="efficientnet_b0 needs an image dataset; 'wine' is tabular"):
        job_spec_validate(owner=user, data={"model_type": "efficientnet_b0", "dataset": "wine"})
    assert job_spec_validate(owner=user, data={**SPEC, "dataset": "wine"})["dataset"] == "wine"  # any input
    ModelOffer.objects.filter(name="tinynet").update(input_kind="tabular")
    with pytest.raises(SpecInvalid, match="tinynet needs a tabular dataset; 'digits' holds images"):
        job_spec_validate(owner=user, data=SPEC)


def test_a_sweep_checks_model_args_against_each_model_it_tries(api):
    base = {**SPEC, "model_args": {"hidden": 16, "channels": 4}}
    del base["model_type"]
    space = {"model_type": {"choice": ["tinynet", "mlp"]}}
    r = api.post("/api/v1/sweeps", {"base": base, "space": space, "search": "grid"}, format="json")
    assert r.status_code == 400
    assert "'mlp': model_args: 'channels': unknown argument; mlp takes dropout, hidden." in str(r.json())


# ----------------------------------------------------------------- checkpoints


def test_a_checkpoint_rebuilds_a_plugins_model_from_its_metadata_alone():
    model = plugins.build("tinynet", (1, 8, 8), 10, {"hidden": 24, "activation": "tanh"})
    config = model_config("tinynet", (1, 8, 8), 10, {"hidden": 24, "activation": "tanh"})
    data = checkpoint_bytes(model.state_dict(), config)
    assert checkpoint_config(data)["model_args"] == {"hidden": 24, "activation": "tanh"}
    loaded = load_checkpoint(data)
    assert isinstance(loaded.head[1], torch.nn.Tanh) and loaded.head[0].out_features == 24
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))
    assert "model_args" not in model_config("cnn", (1, 8, 8), 10, {})  # no arguments: the bytes as before


@pytest.mark.django_db(transaction=True)
def test_a_plugin_job_trains_and_its_checkpoint_predicts_with_the_recorded_accuracy(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    spec = job_spec_validate(
        owner=user, data={**SPEC, "model_args": {"hidden": 48, "channels": 8}, "learning_rate": 0.01, "threads": 1}
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=spec)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.error
    assert job.val_accuracy > 0.8
    model = load_checkpoint(blob_read(job.checkpoints.get(kind="final").file.name))
    assert model.head[0].out_features == 48 and model.features[0].out_channels == 8
    split = build_split("digits", seed=0)
    with torch.no_grad():
        accuracy = (model(split.x_val).argmax(1) == split.y_val).float().mean().item()
    assert accuracy == pytest.approx(job.val_accuracy)


@pytest.mark.django_db(transaction=True)
def test_a_model_with_dropout_gives_the_same_final_sha256_twice(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    """Dropout draws from torch's global RNG; each shard trains in a fork of it seeded
    from (seed, epoch, shard), so what the worker ran before does not matter."""
    data = {**SPEC, "model_args": {"hidden": 32, "dropout": 0.3}, "epochs": 2, "threads": 1}
    finals = []
    for _ in range(3):
        torch.rand(3)  # the process's own RNG moves on between jobs, as a worker's does
        with django_capture_on_commit_callbacks(execute=True):
            job = lifecycle.job_create(owner=user, spec=job_spec_validate(owner=user, data=data))
        finals.append(job.checkpoints.get(kind="final").sha256)
    assert finals[0] == finals[1] == finals[2]
