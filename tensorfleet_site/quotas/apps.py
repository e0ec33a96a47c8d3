from django.apps import AppConfig


class QuotasConfig(AppConfig):
    """Per-user quotas: defaults in settings (TENSORFLEET_QUOTA_*), overrides per user in
    the admin. The limits live here; each app counts its own use against them."""

    name = "tensorfleet_site.quotas"
    label = "quotas"
    verbose_name = "Quotas"
