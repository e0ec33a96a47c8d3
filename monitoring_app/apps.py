from django.apps import AppConfig


class MonitoringAppConfig(AppConfig):
    name = "monitoring_app"
    verbose_name = "Monitoring"

    def ready(self):
        # Celery's task signals count tasks in whichever process runs them; worker_init
        # starts a worker's exporter (worker_metrics.py). Harmless in other processes.
        from jobs import signals
        from monitoring_app import metrics, worker_metrics

        worker_metrics.connect()
        signals.shard_succeeded.connect(metrics.on_shard_succeeded, dispatch_uid="metrics.on_shard_succeeded")
