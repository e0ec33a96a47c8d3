"""The reconciler's pass costs a fixed number of queries, however many jobs are active."""

from __future__ import annotations

import pytest
from django.utils import timezone

from jobs.models import Status, Task
from jobs.reconcile import reconcile
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def running_jobs(user, count: int) -> None:
    now = timezone.now()
    for _ in range(count):
        job = JobFactory(owner=user, status=Status.RUNNING, num_workers=2, epochs=5, current_epoch=1)
        for shard in range(2):
            Task.objects.create(job=job, epoch=1, shard=shard, status=Status.RUNNING, attempts=1, heartbeat_at=now)


def test_a_pass_does_not_query_per_job(user, django_assert_max_num_queries):
    running_jobs(user, 60)
    with django_assert_max_num_queries(12):
        assert reconcile() == {}


def test_the_measurement_the_benchmark_runs(user):
    from tensorfleet_site.benchmark.reconciler_load import measure

    result = measure(200, 2)
    assert result["active_jobs"] == 200 and len(result["seconds"]) == 2 and result["actions"] == [{}, {}]
