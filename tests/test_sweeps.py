"""Hyperparameter sweeps: the space, seeded sampling, ASHA decisions, the API, the
scheduler's hooks, the command, and a small sweep trained for real (Celery in-process)."""

from __future__ import annotations

import json
import math

import pytest
from django.core.management import CommandError, call_command

from jobs import asha
from jobs.models import Job, Status, Sweep
from jobs.search_space import SpaceError, grid_point, grid_size, parse_space, random_point, trial_point
from jobs.services import claims, epochs, lifecycle, sweeps

# A space / spec ---------------------------------------------------------------------------

SPACE = {"learning_rate": {"log_uniform": [1e-4, 1e-1]}, "batch_size": {"choice": [16, 32, 64]}}
SWEEP = {
    "name": "digits-lr",
    "base": {"model_type": "mlp", "dataset": "digits", "epochs": 4, "num_workers": 1, "threads": 1},
    "space": SPACE,
    "search": "random",
    "trials": 6,
    "max_concurrent": 3,
    "metric": "val_accuracy",
    "mode": "max",
    "early_stopping": {"type": "asha", "grace_epochs": 1, "reduction_factor": 3},
}


# The space ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"choice": []}, "choice needs a non-empty list"),
        ({"choice": "abc"}, "choice needs a non-empty list"),
        ({"uniform": [0.1, 0.01]}, "range [0.1, 0.01] is inverted"),
        ({"uniform": [0.1, 0.1]}, "range [0.1, 0.1] is empty"),
        ({"log_uniform": [0, 0.1]}, "log_uniform needs low > 0"),
        ({"log_uniform": [1e-3]}, "log_uniform needs [low, high], two numbers"),
        ({"int_uniform": [8, 2]}, "int_uniform range [8, 2] is inverted"),
        ({"int_uniform": [1.5, 4]}, "int_uniform needs two integers"),
        ({"normal": [0, 1]}, "Expected one of choice, uniform, log_uniform, int_uniform"),
        ({"choice": [1], "uniform": [0, 1]}, "Expected one of"),
        ([16, 32], 'write {"choice": [16, 32]}'),
    ],
)
def test_bad_space_entries_say_what_is_wrong(entry, message):
    with pytest.raises(SpaceError) as exc:
        parse_space({"batch_size": {"choice": [16]}, "learning_rate": entry})
    assert list(exc.value.errors) == ["learning_rate"]
    assert message in exc.value.errors["learning_rate"][0]


def test_int_uniform_of_one_value_and_fixed_values_are_fine():
    params = parse_space({"num_workers": {"int_uniform": [2, 2]}, "optimizer": "sgd"})
    assert random_point(params, seed=0, index=0) == {"num_workers": 2, "optimizer": "sgd"}


def test_random_sampling_is_seeded_per_trial_and_stays_in_range():
    params = parse_space({**SPACE, "momentum": {"uniform": [0.0, 0.9]}, "epochs": {"int_uniform": [2, 5]}})
    first = [random_point(params, seed=7, index=i) for i in range(50)]
    again = [random_point(parse_space(dict(reversed(list(SPACE.items()))) | {
        "momentum": {"uniform": [0.0, 0.9]}, "epochs": {"int_uniform": [2, 5]}}), seed=7, index=i) for i in range(50)]  # fmt: skip
    assert first == again  # the same spec (whatever its key order) samples the same trials
    assert first != [random_point(params, seed=8, index=i) for i in range(50)]
    assert random_point(params, seed=7, index=3) == first[3]  # trial n on its own, in any order
    for p in first:
        assert 1e-4 <= p["learning_rate"] < 1e-1 and p["batch_size"] in (16, 32, 64)
        assert 0.0 <= p["momentum"] < 0.9 and p["epochs"] in range(2, 6)
    assert {p["batch_size"] for p in first} == {16, 32, 64} and {p["epochs"] for p in first} == {2, 3, 4, 5}
    # log-uniform: about as many draws in each decade
    decades = [math.floor(math.log10(p["learning_rate"])) for p in first]
    assert all(decades.count(d) >= 8 for d in (-4, -3, -2))


def test_grid_is_the_product_of_choices_and_fixed_values():
    params = parse_space({"batch_size": {"choice": [16, 32]}, "optimizer": "sgd", "learning_rate": {"choice": [0.1, 0.01, 0.001]}})  # fmt: skip
    assert grid_size(params) == 6
    points = [grid_point(params, i) for i in range(6)]
    assert points[0] == {"batch_size": 16, "learning_rate": 0.1, "optimizer": "sgd"}
    assert points[1] == {"batch_size": 16, "learning_rate": 0.01, "optimizer": "sgd"}
    assert points[3] == {"batch_size": 32, "learning_rate": 0.1, "optimizer": "sgd"}
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 6
    assert trial_point(params, search="grid", seed=99, index=5) == points[5]  # a grid ignores the seed
    with pytest.raises(IndexError):
        grid_point(params, 6)


# ASHA ------------------------------------------------------------------------------------------


def test_rungs_sit_at_grace_times_powers_of_the_factor_below_the_last_epoch():
    assert asha.rungs(grace_epochs=1, reduction_factor=3, max_epochs=6) == [1, 3]
    assert asha.rungs(grace_epochs=2, reduction_factor=3, max_epochs=20) == [2, 6, 18]
    assert asha.rungs(grace_epochs=1, reduction_factor=2, max_epochs=9) == [1, 2, 4, 8]
    assert asha.rungs(grace_epochs=4, reduction_factor=2, max_epochs=4) == []


def decide(trial, epoch, table, mode="max", max_epochs=9, factor=3):
    return asha.decide(
        trial=trial,
        epoch=epoch,
        table=table,
        grace_epochs=1,
        reduction_factor=factor,
        max_epochs=max_epochs,
        mode=mode,
    )


def test_asha_lets_everyone_go_on_until_the_rung_has_reduction_factor_trials():
    assert decide("a", 1, {"a": {1: 0.1}}).keep_going
    assert decide("b", 1, {"a": {1: 0.9}, "b": {1: 0.1}}).keep_going
    d = decide("c", 1, {"a": {1: 0.9}, "b": {1: 0.8}, "c": {1: 0.1}})
    assert not d.keep_going and d.rung == 1 and d.reached == 3 and d.cutoff == 0.9


def test_asha_keeps_the_top_fraction_of_the_rung_so_far():
    table = {t: {1: v} for t, v in zip("abcdef", [0.5, 0.6, 0.7, 0.8, 0.9, 0.95], strict=True)}
    # 6 at the rung, factor 3: the best 2 go on (0.95 and 0.9)
    assert [decide(t, 1, table).keep_going for t in "abcdef"] == [False, False, False, False, True, True]
    assert decide("a", 2, table | {"a": {1: 0.5, 2: 0.1}}).keep_going  # 2 is not a rung
    assert decide("a", 9, table | {"a": {9: 0.1}}, max_epochs=9).keep_going  # nor the last epoch


def test_asha_min_mode_and_diverged_trials():
    losses = {"a": {1: 0.2}, "b": {1: 0.3}, "c": {1: 0.9}}
    assert decide("a", 1, losses, mode="min").keep_going
    assert not decide("c", 1, losses, mode="min").keep_going
    nan = {"a": {1: float("nan")}, "b": {1: float("nan")}, "c": {1: float("nan")}}
    assert not decide("a", 1, nan).keep_going  # a NaN never goes on once the rung is judged
    assert decide("d", 1, nan | {"d": {1: 0.01}}, mode="min").keep_going
    assert decide("a", 1, {"a": {1: 0.7}, "b": {1: 0.7}, "c": {1: 0.7}}).keep_going  # ties go on


# The API ------------------------------------------------------------------------------------


@pytest.fixture
def no_enqueue(monkeypatch):
    """These tests check the sweep bookkeeping, not training: record launches instead."""
    launched = []
    monkeypatch.setattr("jobs.services.launch.job_launch", launched.append)
    monkeypatch.setattr("jobs.services.launch.epoch_launch", lambda job_id, epoch: launched.append((job_id, epoch)))
    monkeypatch.setattr("jobs.orchestration.revoke", lambda ids: None)
    return launched


DROP = "<drop>"  # a field left out of the request


def create(api, **changes):
    body = {k: v for k, v in {**SWEEP, **changes}.items() if v != DROP}
    return api.post("/api/v1/sweeps", body, format="json")


@pytest.mark.django_db
def test_create_starts_max_concurrent_trials_as_jobs(api, user, no_enqueue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = create(api)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "running" and body["trials"] == 6 and body["max_concurrent"] == 3
    assert body["counts"]["queued"] == 3 and body["counts"]["pending"] == 3 and body["best"] is None
    trials = body["trial_jobs"]
    assert [t["trial_number"] for t in trials] == [1, 2, 3]
    assert {t["status"] for t in trials} == {"queued"}
    assert set(trials[0]["params"]) == {"batch_size", "learning_rate"}
    assert sorted(no_enqueue) == sorted(Job.objects.values_list("id", flat=True))  # launched after commit

    # Each trial is an ordinary job, linked to its sweep.
    job = api.get(f"/api/v1/jobs/{trials[0]['job_id']}").json()
    assert job["sweep"] == body["id"] and job["trial_number"] == 1 and job["name"] == "digits-lr #1"
    assert (job["model_type"], job["dataset"], job["epochs"]) == ("mlp", "digits", 4)
    assert job["learning_rate"] == trials[0]["params"]["learning_rate"]
    listed = api.get("/api/v1/jobs", {"sweep": body["id"]}).json()
    assert listed["count"] == 3
    assert api.get(f"/api/v1/sweeps/{body['id']}/trials").json()["count"] == 3
    assert api.get("/api/v1/sweeps").json()["results"][0]["id"] == body["id"]


@pytest.mark.django_db
def test_the_same_spec_samples_the_same_trials(api, no_enqueue):
    a, b = create(api).json(), create(api).json()
    c = create(api, seed=1).json()
    params = lambda s: [t["params"] for t in s["trial_jobs"]]  # noqa: E731
    assert params(a) == params(b) != params(c)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, errors",
    [
        ({"colour": "blue"}, {"colour": ["Unknown field."]}),
        ({"space": {"colour": {"choice": [1, 2]}}}, {"space": {"colour": ["Unknown field."]}}),
        ({"space": {"learning_rate": {"uniform": [0.1, 0.01]}}}, "space.learning_rate: uniform range"),
        ({"space": {"batch_size": {"choice": []}}}, "space.batch_size: choice needs a non-empty list"),
        ({"space": {}}, "space.space: Expected a non-empty JSON object"),
        ({"space": {"learning_rate": {"uniform": [0.1, 20.0]}}}, "space.learning_rate: high 20.0: Ensure this value"),
        ({"space": {"optimizer": {"choice": ["adam", "lbfgs"]}}}, "space.optimizer: 'lbfgs': \"lbfgs\" is not a valid"),
        ({"space": {"epochs": {"uniform": [2, 5]}}}, "space.epochs: epochs takes integers: use int_uniform"),
        ({"space": {"name": {"choice": ["a", "b"]}}}, "space.name: Not a hyperparameter"),
        ({"space": {"epochs": {"choice": [2, 3]}}}, "space.epochs: Also given in base"),
        ({"base": {"model_type": "mlp", "dataset": "digits", "epochs": 0}}, "base.epochs: Ensure this value"),
        ({"base": {"model_type": "mlp", "dataset": "digits", "color": 1}}, "base.color: Unknown field."),
        ({"trials": DROP}, "trials: This field is required for random search."),
        ({"trials": None}, "trials: This field may not be null."),
        ({"search": "grid"}, "space.learning_rate: grid search takes only choice lists and fixed values"),
        (
            {"search": "grid", "trials": 2, "space": {"batch_size": {"choice": [16, 32, 64]}}},
            "trials: The grid has 3 points, more than the budget of 2 trials.",
        ),
        ({"early_stopping": {"type": "asha", "grace_epochs": 4}}, "early_stopping.grace_epochs: No trial gets past"),
        ({"early_stopping": {"type": "median"}}, "early_stopping.type:"),
        ({"early_stopping": {"type": "asha", "rungs": 3}}, "early_stopping.rungs: Unknown field."),
        ({"early_stopping": {"type": "asha", "reduction_factor": 1}}, "early_stopping.reduction_factor: Ensure"),
        ({"metric": "accuracy"}, "metric:"),
        ({"max_concurrent": 0}, "max_concurrent: Ensure"),
        (
            {"base": {"dataset": "iris", "epochs": 4}, "space": {"model_type": {"choice": ["mlp", "cnn"]}}},
            "space.model_type: 'cnn': cnn needs an image dataset",
        ),
        (
            {"base": {"epochs": 4}, "space": {"model_type": {"choice": ["mlp", "cnn"]}, "dataset": {"choice": ["digits", "iris"]}}},
            "space: Trial 3 {'dataset': 'iris', 'model_type': 'cnn'} is not a valid job: model_type: cnn",  # only a combination of two choices is invalid
        ),
    ],
)  # fmt: skip
def test_bad_sweeps_get_a_message_per_field(api, no_enqueue, changes, errors):
    r = create(api, **changes)
    assert r.status_code == 400, r.content
    if isinstance(errors, dict):
        assert r.json() == errors
    else:
        assert errors in "; ".join(_lines(r.json())), r.json()
    assert not Sweep.objects.exists() and not Job.objects.exists()


def _lines(errors, prefix=""):
    for field, messages in errors.items():
        if isinstance(messages, dict):
            yield from _lines(messages, f"{prefix}{field}.")
        else:
            yield from (f"{prefix}{field}: {m}" for m in messages)


@pytest.mark.django_db
def test_a_grid_runs_each_point_once_by_default(api, no_enqueue):
    space = {"batch_size": {"choice": [16, 32]}, "learning_rate": {"choice": [0.01, 0.001]}}
    r = create(api, search="grid", trials=DROP, space=space, max_concurrent=4)
    assert r.status_code == 201, r.content
    got = [(t["params"]["batch_size"], t["params"]["learning_rate"]) for t in r.json()["trial_jobs"]]
    assert r.json()["trials"] == 4 and got == [(16, 0.01), (16, 0.001), (32, 0.01), (32, 0.001)]


@pytest.mark.django_db
def test_sweeps_belong_to_their_owner(api, other_user, no_enqueue):
    from rest_framework.test import APIClient

    sweep_id = create(api).json()["id"]
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get(f"/api/v1/sweeps/{sweep_id}").status_code == 404
    assert other.get(f"/api/v1/sweeps/{sweep_id}/trials").status_code == 404
    assert other.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 404
    assert other.get("/api/v1/sweeps").json()["count"] == 0
    assert other.get("/api/v1/jobs").json()["count"] == 0
    assert APIClient().get("/api/v1/sweeps").status_code == 401
    assert Sweep.objects.get(id=sweep_id).status == "running"


@pytest.mark.django_db
def test_cancelling_a_sweep_cancels_its_trials_and_starts_no_more(api, no_enqueue):
    sweep_id = create(api).json()["id"]
    r = api.post(f"/api/v1/sweeps/{sweep_id}/cancel")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "cancelled" and body["finished_at"]
    assert [t["status"] for t in body["trial_jobs"]] == ["cancelled"] * 3
    assert body["counts"]["cancelled"] == 3 and body["counts"]["pending"] == 3
    assert Job.objects.count() == 3
    assert api.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 409


# The scheduler's hooks, with metrics written by hand -------------------------------------------


def record(job, epoch, val_accuracy):
    Job.objects.filter(id=job.id, status=Status.QUEUED).update(status=Status.RUNNING)
    epochs.epoch_record(
        job_id=job.id,
        epoch=epoch,
        train_loss=1.0 - val_accuracy,
        val_loss=1.0 - val_accuracy,
        val_accuracy=val_accuracy,
        samples=100,
        duration_s=1.0,
    )
    return sweeps.on_epoch_recorded(job.id, epoch)  # as workers/steps.py aggregate_step does


def trial(sweep, n):
    return Job.objects.get(sweep=sweep, trial_number=n)


def active(sweep):
    return sorted(
        Job.objects.filter(sweep=sweep, status__in=("queued", "running")).values_list("trial_number", flat=True)
    )


@pytest.mark.django_db
def test_asha_stops_a_trial_behind_at_a_rung_and_its_slot_goes_to_the_next(user, no_enqueue):
    spec = _validated(user, {**SWEEP, "base": {**SWEEP["base"], "epochs": 3}})
    sweep = sweeps.sweep_create(owner=user, spec=spec)
    assert active(sweep) == [1, 2, 3]
    t1, t2, t3 = trial(sweep, 1), trial(sweep, 2), trial(sweep, 3)
    assert sweeps.next_epoch_held(t1, 1) and not sweeps.next_epoch_held(t1, 2)  # rungs: epoch 1 only (3 is last)

    assert record(t1, 1, 0.50) is True  # alone at the rung
    assert record(t2, 1, 0.90) is True  # two of three
    assert record(t3, 1, 0.70) is False  # three: only the best third (t2) goes on
    t3.refresh_from_db()
    assert t3.status == "cancelled" and t3.error == "early-stopped"
    assert active(sweep) == [1, 2, 4]  # the freed slot went to trial 4
    sweep.refresh_from_db()
    assert sweep.best_trial_id == t2.id and sweep.best_metric == 0.90

    assert record(t2, 2, 0.95) is True  # not a rung
    record(t2, 3, 0.97)  # its last epoch: it succeeds and trial 5 takes its slot
    t2.refresh_from_db()
    assert t2.status == "succeeded" and active(sweep) == [1, 4, 5]
    assert record(trial(sweep, 4), 1, 0.30) is False  # 4 at the rung now: 0.30 is not in the top 1/3
    lifecycle.job_fail(job_id=t1.id, reason="out of memory")  # a failed trial frees its slot too
    assert active(sweep) == [5, 6]
    for n in (5, 6):
        assert record(trial(sweep, n), 1, 0.99) is True
        record(trial(sweep, n), 2, 0.99)
        record(trial(sweep, n), 3, 0.98 + n / 1000)
    sweep.refresh_from_db()
    assert sweep.status == "succeeded" and sweep.finished_at
    assert sweep.best_trial == trial(sweep, 6) and sweep.best_metric == pytest.approx(0.986)
    assert Job.objects.filter(sweep=sweep).count() == 6  # the budget, not one more
    assert [j.error for j in Job.objects.filter(sweep=sweep, status="cancelled")] == ["early-stopped"] * 2


@pytest.mark.django_db
def test_hooks_do_nothing_for_jobs_outside_a_sweep(user, no_enqueue):
    from tests.factories import JobFactory

    job = JobFactory(owner=user, status=Status.RUNNING, epochs=3)
    assert sweeps.next_epoch_held(job, 1) is False
    assert record(job, 1, 0.1) is True
    lifecycle.job_cancel(job=job)
    assert not Sweep.objects.exists() and Job.objects.count() == 1


@pytest.mark.django_db
def test_a_sweep_whose_trials_all_fail_fails(user, no_enqueue):
    sweep = sweeps.sweep_create(owner=user, spec=_validated(user, {**SWEEP, "trials": 2, "max_concurrent": 2}))
    for n in (1, 2):
        lifecycle.job_fail(job_id=trial(sweep, n).id, reason="boom")
    sweep.refresh_from_db()
    assert sweep.status == "failed" and sweep.error == "no trial recorded an epoch"


@pytest.mark.django_db
def test_the_reconciler_fills_a_slot_whose_hook_was_lost(user, no_enqueue):
    from jobs.reconcile import reconcile

    sweep = sweeps.sweep_create(owner=user, spec=_validated(user, {**SWEEP, "trials": 3, "max_concurrent": 1}))
    Job.objects.filter(id=trial(sweep, 1).id).update(status=Status.FAILED)  # ended, but no hook ran
    assert active(sweep) == []
    assert reconcile().get("sweep_trials_started") == 1
    assert active(sweep) == [2]
    assert reconcile().get("sweep_trials_started") is None  # nothing more while it runs


def _validated(user, body):
    from jobs.sweep_serializers import SweepCreateSerializer

    s = SweepCreateSerializer(data=body, context={"owner": user})
    assert s.is_valid(), s.errors
    return s.validated_data


@pytest.mark.django_db
def test_the_admin_lists_sweeps_with_their_trials_and_cancels_them(admin_client, user, no_enqueue):
    sweep = sweeps.sweep_create(owner=user, spec=_validated(user, SWEEP))
    page = admin_client.get("/admin/jobs/sweep/")
    assert page.status_code == 200 and str(sweep.id) in page.content.decode()
    page = admin_client.get(f"/admin/jobs/sweep/{sweep.id}/change/").content.decode()
    assert page.count("/admin/jobs/job/") >= 3  # each trial links to its job
    page = admin_client.get(f"/admin/jobs/job/{trial(sweep, 1).id}/change/").content.decode()
    assert f"/admin/jobs/sweep/{sweep.id}/change/" in page  # and the job back to its sweep
    assert admin_client.get("/admin/jobs/job/").status_code == 200
    admin_client.post("/admin/jobs/sweep/", {"action": "cancel_sweeps", "_selected_action": [str(sweep.id)]})
    sweep.refresh_from_db()
    assert sweep.status == "cancelled" and active(sweep) == []


# The command --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_submit_sweep_reads_json_and_yaml(tmp_path, user, no_enqueue, capsys, suffix):
    import yaml

    path = tmp_path / f"sweep{suffix}"
    path.write_text(json.dumps(SWEEP) if suffix == ".json" else yaml.safe_dump(SWEEP))
    call_command("submit_sweep", str(path), "--owner", user.username)
    out = capsys.readouterr().out
    assert "submitted sweep" in out and "6 trials, 3 at a time, random search on val_accuracy (max)" in out
    sweep = Sweep.objects.get()
    assert sweep.owner == user and sweep.trials.count() == 3


@pytest.mark.django_db
def test_submit_sweep_says_what_is_wrong_in_one_line(tmp_path, user):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**SWEEP, "space": {"learning_rate": {"log_uniform": [0.1, 0.001]}}}))
    with pytest.raises(CommandError, match=r"^space\.learning_rate: log_uniform range \[0\.1, 0\.001\] is inverted"):
        call_command("submit_sweep", str(path), "--owner", user.username)
    path.write_text("[1, 2")
    with pytest.raises(CommandError, match="neither JSON nor YAML|must hold one object"):
        call_command("submit_sweep", str(path), "--owner", user.username)


# A small sweep trained for real, Celery in-process ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_eager_sweep_trains_every_trial_and_reports_the_best(user, eager_celery, local_storage, tmp_path, capsys):
    spec = {
        "name": "iris-lr",
        "base": {"model_type": "logreg", "dataset": "iris", "epochs": 3, "num_workers": 1, "threads": 1},
        "space": {"learning_rate": {"log_uniform": [1e-3, 0.3]}, "batch_size": {"choice": [16, 32]}},
        "trials": 5,
        "max_concurrent": 2,
        "seed": 1,
        "early_stopping": {"type": "asha", "grace_epochs": 1, "reduction_factor": 2},
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(spec))
    call_command("submit_sweep", str(path), "--owner", user.username, "--watch")
    out = capsys.readouterr().out
    sweep = Sweep.objects.get()
    trials = list(sweep.trials.order_by("trial_number"))
    assert sweep.status == "succeeded" and len(trials) == 5, out
    assert {t.status for t in trials} <= {"succeeded", "cancelled"}
    stopped = [t for t in trials if t.status == "cancelled"]
    assert stopped and all(t.error == "early-stopped" and t.completed_epochs < 3 for t in stopped)
    assert all(t.checkpoints.filter(epoch=t.completed_epochs).exists() for t in stopped)  # checkpoints kept
    finished = [t for t in trials if t.status == "succeeded"]
    assert finished and sweep.best_metric >= max(t.val_accuracy for t in finished)
    assert sweep.best_trial.val_accuracy == sweep.best_metric
    assert f"best: trial {sweep.best_trial.trial_number}" in out and "checkpoint: epoch 3 (final)" in out
    assert "(early-stopped)" in out and f"sweep {sweep.id} succeeded" in out


# Cancelling while an epoch launches (the sweep cancel test on real workers found it) ------------


@pytest.mark.django_db(transaction=True)
def test_a_cancel_racing_an_epoch_launch_leaves_no_shard_queued(user, monkeypatch):
    """The launch creates the next epoch's Task rows while a cancel commits: the cancel must
    see those rows (and cancel them), or they stay queued for good — no shard claims them."""
    import threading
    from types import SimpleNamespace

    from django.db import connection

    from jobs import orchestration
    from jobs.models import Task
    from jobs.services import launch as launching
    from tests.factories import JobFactory

    job = JobFactory(owner=user, status=Status.RUNNING, num_workers=2, epochs=3)
    rows_made, release = threading.Event(), threading.Event()
    dispatch = claims.epoch_tasks_dispatch

    def dispatch_then_wait(*, job, epoch, round=1):
        # The window inside epoch_tasks_dispatch: rows made (uncommitted), the job row not yet updated.
        Task.objects.bulk_create([Task(job=job, epoch=epoch, shard=s) for s in range(job.num_workers)])
        rows_made.set()
        release.wait(10)
        return dispatch(job=job, epoch=epoch, round=round)

    monkeypatch.setattr(claims, "epoch_tasks_dispatch", dispatch_then_wait)
    monkeypatch.setattr(orchestration, "chord", lambda header, body: SimpleNamespace(apply_async=lambda: None))
    monkeypatch.setattr(orchestration, "revoke", lambda ids: None)

    def in_thread(fn):
        def run():
            try:
                fn()
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    launch = in_thread(lambda: launching.epoch_launch(job.id, 2))
    assert rows_made.wait(10)
    cancel = in_thread(lambda: lifecycle.job_cancel(job=job))
    cancel.join(timeout=1.0)  # with the job row locked by the launch, the cancel waits for it
    release.set()
    launch.join(10)
    cancel.join(10)
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert list(Task.objects.filter(job=job).values_list("status", flat=True)) == ["cancelled", "cancelled"]
