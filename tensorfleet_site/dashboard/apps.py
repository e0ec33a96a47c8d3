from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The web dashboard: pages over the jobs and storage apps (no models of its own)."""

    name = "tensorfleet_site.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
