"""Each shard's and aggregate's log lines, kept within a cap and shown by the API
(issue 18, "Logs"): the start, progress at the heartbeat, warnings, how it ended."""

from __future__ import annotations

import logging
import warnings

import pytest

from jobs.models import Job, Status, TaskLog
from jobs.services import lifecycle
from jobs.services.task_logs import log_trim, task_log_append
from tests.factories import JobFactory
from workers import log_capture

SPEC = dict(
    name="logged",
    model_type="mlp",
    dataset="iris",
    num_workers=2,
    epochs=2,
    batch_size=16,
    learning_rate=0.01,
    optimizer="adam",
    seed=0,
    queue="cpu",
    threads=1,
)


def test_trimming_keeps_the_newest_lines_within_both_caps():
    lines = [f"line {i}" for i in range(10)]
    assert log_trim(lines, max_lines=3, max_bytes=1000) == (["line 7", "line 8", "line 9"], 7)
    assert log_trim(lines, max_lines=100, max_bytes=14) == (["line 8", "line 9"], 8)  # 7 bytes each, newline included
    assert log_trim(["x" * 50], max_lines=5, max_bytes=10) == ([], 1)


@pytest.mark.django_db
def test_appends_accumulate_and_older_lines_drop_past_the_cap(settings):
    settings.TENSORFLEET_TASK_LOG_LINES, settings.TENSORFLEET_TASK_LOG_BYTES = 4, 10_000
    job = JobFactory()
    for start in (0, 3):
        assert task_log_append(job_id=job.id, epoch=1, kind="shard", shard=1, lines=[f"l{start + i}" for i in range(3)])
    task_log_append(job_id=job.id, epoch=1, kind="shard", shard=1, lines=["two\nlines"])
    log = TaskLog.objects.get(job=job, epoch=1, kind="shard", shard=1)
    assert log.text.split("\n") == ["l3", "l4", "l5", "two | lines"] and (log.lines, log.dropped) == (4, 3)
    assert task_log_append(job_id=job.id, epoch=1, kind="aggregate", lines=[]) is True  # nothing to write: no row
    assert not TaskLog.objects.filter(kind="aggregate").exists()


@pytest.mark.django_db
def test_a_deleted_jobs_log_is_not_written_and_fails_nothing():
    job = JobFactory()
    job_id = job.id
    job.delete()
    assert task_log_append(job_id=job_id, epoch=1, kind="shard", lines=["late"]) is False
    assert not TaskLog.objects.exists()


@pytest.mark.django_db
def test_a_step_records_its_start_warnings_progress_and_end_with_few_writes(settings, monkeypatch):
    settings.TENSORFLEET_TASK_LOG_PROGRESS_SECONDS = 0
    job = JobFactory()
    writes = []
    real = task_log_append
    monkeypatch.setattr(
        "jobs.services.task_logs.task_log_append", lambda **kw: writes.append(len(kw["lines"])) or real(**kw)
    )

    @log_capture.logged("shard")
    def step(*, job_id, epoch, shard, worker):
        logging.getLogger("workers.training").warning("slow batch")
        logging.getLogger("celery.worker").info("not ours")  # info from outside the platform is left out
        warnings.warn("deprecated thing", UserWarning, stacklevel=1)
        log_capture.progress()
        return {"key": "k"}

    with pytest.warns(UserWarning, match="deprecated thing"):  # still shown as before, and logged
        assert step(job_id=job.id, epoch=2, shard=1, worker="w@host") == {"key": "k"}
    text = TaskLog.objects.get(job=job, epoch=2, kind="shard", shard=1).text
    assert "INFO shard started: epoch 2, shard 1, worker w@host" in text
    assert "WARNING workers.training: slow batch" in text and "UserWarning: deprecated thing" in text
    assert "INFO training, " in text and "INFO done (" in text and "not ours" not in text
    assert writes == [1, 3, 1]  # the start; two warnings with the progress line; the end


@pytest.mark.django_db
def test_a_failing_step_logs_the_error_and_raises_it(monkeypatch):
    job = JobFactory()

    @log_capture.logged("aggregate")
    def step(*, job_id, epoch):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        step(job_id=job.id, epoch=1)
    log = TaskLog.objects.get(job=job, epoch=1, kind="aggregate")
    lines = log.text.split("\n")
    assert lines[0].endswith("INFO aggregate started: epoch 1, worker this process")
    assert "ERROR aggregate failed after" in lines[1] and "RuntimeError: disk full" in lines[1]


@pytest.mark.django_db(transaction=True)
def test_an_eager_job_keeps_a_log_per_shard_and_aggregate_shown_by_the_api(
    api, user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=SPEC)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.error
    tasks = api.get(f"/api/v1/jobs/{job.id}/tasks").json()["results"]
    assert len(tasks) == 4
    log = api.get(tasks[1]["log_url"]).json()
    assert (log["epoch"], log["kind"], log["shard"]) == (tasks[1]["epoch"], "shard", tasks[1]["shard"])
    assert f"shard started: epoch {log['epoch']}, shard {log['shard']}" in log["text"] and "done (" in log["text"]
    aggregate = api.get(f"/api/v1/jobs/{job.id}/epochs/2/aggregate/log").json()
    assert "aggregate started: epoch 2" in aggregate["text"] and "epoch recorded, val_accuracy" in aggregate["text"]
    every = api.get(f"/api/v1/jobs/{job.id}/logs").json()
    assert [(r["epoch"], r["kind"], r["shard"]) for r in every["results"]] == [
        (1, "shard", 0), (1, "shard", 1), (1, "aggregate", 0), (2, "shard", 0), (2, "shard", 1), (2, "aggregate", 0)
    ]  # fmt: skip
    assert api.get(f"/api/v1/jobs/{job.id}/epochs/3/aggregate/log").status_code == 404
    assert api.get(f"/api/v1/jobs/{job.id}/tasks/999999/log").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_diverging_shard_says_why_in_its_log(
    user, api, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    eager_celery.conf.task_eager_propagates = False  # as on a worker: the failure goes to on_failure
    spec = {**SPEC, "dataset": "wine", "learning_rate": 10.0, "optimizer": "sgd", "epochs": 4}
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=spec)
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error_class == "diverged"
    failed = job.tasks.get(status=Status.FAILED)
    text = api.get(f"/api/v1/jobs/{job.id}/tasks/{failed.id}/log").json()["text"]
    assert "ERROR shard failed after" in text and "Diverged: loss became NaN" in text, text


@pytest.mark.django_db
def test_another_users_job_logs_are_a_404(api, user, other_user):
    job = JobFactory(owner=other_user)
    task_log_append(job_id=job.id, epoch=1, kind="aggregate", lines=["private"])
    assert api.get(f"/api/v1/jobs/{job.id}/logs").status_code == 404
    assert api.get(f"/api/v1/jobs/{job.id}/epochs/1/aggregate/log").status_code == 404
    assert Job.objects.filter(id=job.id).exists()
