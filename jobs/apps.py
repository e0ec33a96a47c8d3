from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Training jobs"

    def ready(self):
        # The sweep scheduler follows the end of its trials; the lifecycle that ends them
        # does not import sweeps (jobs.signals says why).
        from jobs import signals
        from jobs.services import sweeps

        signals.job_ended.connect(sweeps.on_job_ended, dispatch_uid="sweeps.on_job_ended")
