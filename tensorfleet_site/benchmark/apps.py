from django.apps import AppConfig


class BenchmarkConfig(AppConfig):
    """``manage.py benchmark`` (make bench): the platform against a plain PyTorch loop.

    Its no-op Celery tasks (noop_tasks.py) are not autodiscovered: only the fleets the
    benchmark starts import them (TENSORFLEET_WORKER_IMPORTS), never production workers.
    """

    name = "tensorfleet_site.benchmark"
    label = "benchmark"
    verbose_name = "Benchmark"
