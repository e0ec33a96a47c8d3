from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Training workers"

    def ready(self) -> None:
        # A worker publishes the models it can build when it starts and withdraws them when
        # it stops (workers/publishing.py). Nothing here loads torch: the API process runs it too.
        from celery.signals import worker_ready, worker_shutdown

        from workers import publishing

        worker_ready.connect(publishing.on_worker_ready, dispatch_uid="tensorfleet.offers_publish")
        worker_shutdown.connect(publishing.on_worker_shutdown, dispatch_uid="tensorfleet.offers_withdraw")
