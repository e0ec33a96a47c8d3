"""The reconciler's pass with thousands of active jobs (issue 16: under a second at 3,000).

Run as a script in the fleet's environment (its database): seeds ``count`` running jobs,
each with two shards training with fresh heartbeats (the normal state: nothing for the
reconciler to do but look), times ``passes`` passes, prints JSON, and removes the rows.
"""

from __future__ import annotations

import json
import sys
import time


def measure(count: int, passes: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from jobs.models import Job, Status, Task
    from jobs.reconcile import reconcile

    owner, _ = get_user_model().objects.get_or_create(username="reconciler-load")
    proto = dict(
        owner=owner, name="reconciler load", model_type="logreg", dataset="iris", num_workers=2, epochs=5,
        batch_size=32, learning_rate=0.001, optimizer="adam", seed=0, queue="cpu", threads=1, input_shape=[4],
        num_classes=3, total_tasks=10, status=Status.RUNNING, current_epoch=1,
    )  # fmt: skip
    now = timezone.now()
    jobs = Job.objects.bulk_create([Job(**proto) for _ in range(count)], batch_size=2000)
    tasks = [
        Task(job=j, epoch=1, shard=s, status=Status.RUNNING, attempts=1, heartbeat_at=now, started_at=now)
        for j in jobs
        for s in range(2)
    ]
    Task.objects.bulk_create(tasks, batch_size=5000)
    try:
        seconds, actions = [], []
        for _ in range(passes):
            t0 = time.perf_counter()
            actions.append(reconcile())
            seconds.append(time.perf_counter() - t0)
        return {"active_jobs": count, "seconds": seconds, "actions": actions}
    finally:
        Job.objects.filter(owner=owner).delete()
        owner.delete()


if __name__ == "__main__":
    import django

    django.setup()
    print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
