from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Training jobs"

    def ready(self):
        # The sweep scheduler follows the end of its trials; the lifecycle that ends them
        # does not import sweeps (jobs.signals says why).
        from django.db.models.signals import post_delete

        from jobs import signals
        from jobs.models import Job
        from jobs.services import lifecycle, sweeps

        signals.job_ended.connect(sweeps.on_job_ended, dispatch_uid="sweeps.on_job_ended")
        # However a job's row is deleted (the API, the admin, its owner deleted), its
        # objects in storage go with it.
        post_delete.connect(lifecycle.job_rows_deleted, sender=Job, dispatch_uid="lifecycle.job_rows_deleted")
