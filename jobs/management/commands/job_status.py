from __future__ import annotations

import json

from jobs.management.commands._common import JobCommand, get_job
from jobs.serializers import JobSerializer


class Command(JobCommand):
    help = "Show one job: status, progress, metrics, error."

    def add_arguments(self, parser):
        parser.add_argument("job_id")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        job = get_job(opts["job_id"])
        if opts["json"]:
            self.stdout.write(json.dumps(JobSerializer(job, context={"request": None}).data, indent=2, default=str))
            return
        lines = [
            f"job        {job.id}  {job.name}".rstrip(),
            f"status     {job.status}",
            f"progress   {job.progress:.0%} ({job.completed_tasks}/{job.total_tasks} tasks, epoch {job.completed_epochs}/{job.epochs})",
            f"spec       {job.model_type} on {job.dataset}, {job.num_workers} shard(s), batch {job.batch_size}, "
            f"{job.optimizer} lr {job.learning_rate}, seed {job.seed}, queue {job.queue}",
        ]
        if job.val_accuracy is not None:
            lines.append(
                f"metrics    train_loss {job.train_loss:.4f}  val_loss {job.val_loss:.4f}  val_accuracy {job.val_accuracy:.4f}"
            )
        if job.error:
            lines.append(f"error      {job.error}")
        self.stdout.write("\n".join(lines))
