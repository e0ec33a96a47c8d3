from django.apps import AppConfig


class AccessConfig(AppConfig):
    """API tokens (stored as digests), throttling of bad credentials and logins."""

    name = "tensorfleet_site.access"
    label = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        # drf-spectacular finds an authentication scheme only once its extension is imported.
        from tensorfleet_site.access import schema  # noqa: F401
