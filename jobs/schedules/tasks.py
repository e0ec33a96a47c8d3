"""Thin tasks on the control queue: beat's entry point for a schedule, and the judging of
a run once its job has ended."""

from __future__ import annotations

from celery import shared_task

from jobs.schedules import services

JUDGE_TASK = "schedules.judge"


@shared_task(name=services.RUN_TASK)
def run(schedule_id: str) -> str | None:
    started = services.schedule_run(schedule_id=schedule_id, trigger="beat")
    return started.status if started else None


@shared_task(name=JUDGE_TASK)
def judge(run_id: int) -> str | None:
    judged = services.run_judge(run_id=run_id)
    return judged.status if judged else None
