"""Limits on a sweep's spec, and a check whose cost follows what is written, not the
product of the space: a grid is counted by multiplying (stopping past the limit), and each
distinct value is validated once, not once per trial through the whole job serializer."""

from __future__ import annotations

import pytest

from jobs.models import Job, Sweep
from jobs.search_space import grid_size, parse_space
from jobs.serializers import JobCreateSerializer
from tests.test_sweeps import no_enqueue  # noqa: F401 - the sweeps tests' fixture: launches recorded, not sent

pytestmark = pytest.mark.usefixtures("no_enqueue")

BASE = {"model_type": "mlp", "dataset": "digits", "epochs": 2}


def create(api, **body):
    return api.post("/api/v1/sweeps", {"base": BASE, "max_concurrent": 2, **body}, format="json")


def refused(r, *path: str) -> str:
    """The messages at ``path`` (e.g. "space", "seed") of a 400 that stored nothing."""
    assert r.status_code == 400, r.content
    assert not Sweep.objects.exists() and not Job.objects.exists()
    errors = r.json()
    for field in path:
        errors = errors[field]
    return " ".join(errors)


def test_grid_size_stops_multiplying_past_the_limit():
    params = parse_space({f"f{i}": {"choice": list(range(1000))} for i in range(16)})  # 10**48 points
    assert grid_size(params, limit=1000) is None
    assert grid_size(parse_space({"a": {"choice": [1, 2]}, "b": {"choice": [1, 2, 3]}}), limit=6) == 6


@pytest.mark.django_db
def test_a_grid_without_trials_over_the_limit_is_refused(api):
    # 2,000 x 10 = 20,000 points: before, all 20,000 were planned and validated (9 s here) and accepted.
    space = {"batch_size": {"choice": list(range(1, 1001))}, "seed": {"choice": list(range(20))}}
    message = refused(create(api, search="grid", space=space), "space")
    assert "more than 1000 points; the limit is 1000 trials" in message


@pytest.mark.django_db
def test_limits_come_from_settings(api, settings):
    settings.TENSORFLEET_MAX_SWEEP_TRIALS = 5
    settings.TENSORFLEET_MAX_SWEEP_PARAMS = 2
    settings.TENSORFLEET_MAX_SWEEP_CHOICES = 3
    space = {"batch_size": {"choice": [16, 32]}}
    assert "less than or equal to 5" in refused(create(api, space=space, trials=6), "trials")
    grid = {"batch_size": {"choice": [16, 32, 64]}, "seed": {"choice": [1, 2]}}
    assert "more than 5 points" in refused(create(api, search="grid", space=grid), "space")
    three = {"batch_size": {"choice": [16]}, "seed": {"choice": [1]}, "epochs": {"choice": [1]}}
    assert "3 fields are searched; the limit is 2" in refused(create(api, space=three, trials=1), "space", "space")
    four = {"batch_size": {"choice": [16, 32, 64, 128]}}
    assert "choice lists 4 values; the limit is 3" in refused(create(api, space=four, trials=1), "space", "batch_size")
    assert create(api, search="grid", space={"batch_size": {"choice": [16, 32, 64]}}).status_code == 201


@pytest.mark.django_db
def test_a_choice_over_the_limit_is_refused_before_its_values_are_read(api):
    # 50,000 values took 10 s (26 s on the reporter's machine) to validate one by one.
    space = {"seed": {"choice": list(range(50_000))}}
    assert "choice lists 50000 values; the limit is 1000" in refused(
        create(api, space=space, trials=4), "space", "seed"
    )


@pytest.mark.django_db
def test_a_long_bare_list_is_not_echoed_back(api):
    r = create(api, space={"seed": list(range(50_000))}, trials=4)
    message = refused(r, "space", "seed")
    assert "write {\"choice\": [0, 1, 2, '...']}" in message and len(message) < 200


@pytest.mark.django_db
def test_each_value_is_validated_once_not_each_trial(api, monkeypatch, settings):
    """A sweep at the limits: 1,000 values and 1,000 trials. Before, every value and every
    trial ran the whole job serializer (2,000 runs); now only the reference spec and the
    trials actually started do, and each value goes through its own field once."""
    settings.TENSORFLEET_QUOTA_SWEEP_TRIALS = 0  # unlimited: this is about the check, not the quota
    runs = []
    whole = JobCreateSerializer.to_internal_value
    monkeypatch.setattr(JobCreateSerializer, "to_internal_value", lambda s, d: runs.append(1) or whole(s, d))
    space = {"seed": {"choice": list(range(1000))}, "learning_rate": {"log_uniform": [1e-4, 1e-1]}}
    r = create(api, space=space, trials=1000)
    assert r.status_code == 201, r.content
    assert len(runs) <= 1 + 2  # the reference spec, then the 2 trials started (max_concurrent)


@pytest.mark.django_db
def test_a_bad_value_among_many_is_still_found(api):
    space = {"batch_size": {"choice": [*range(1, 1000), 0]}}
    message = refused(create(api, space=space, trials=3), "space", "batch_size")
    assert "0: Ensure this value is greater than or equal to 1." in message


@pytest.mark.django_db
def test_a_sampled_combination_is_still_checked_per_trial(api):
    # Each value is fine alone and with the others' first values; trial 2 pairs cnn with iris.
    base = {"epochs": 2}
    space = {"model_type": {"choice": ["mlp", "cnn"]}, "dataset": {"choice": ["digits", "iris"]}}
    r = api.post("/api/v1/sweeps", {"base": base, "space": space, "search": "grid"}, format="json")
    assert "is not a valid job: model_type: cnn needs an image dataset" in refused(r, "space")


@pytest.mark.django_db
def test_a_grid_value_listed_twice_is_refused(api):
    space = {"batch_size": {"choice": [16, 32, 16.0]}}
    assert "16.0 is listed twice" in refused(create(api, search="grid", space=space), "space", "batch_size")
    # A random search may weight a value by listing it twice.
    assert create(api, space=space, trials=3).status_code == 201
