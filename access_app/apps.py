from django.apps import AppConfig


class AccessAppConfig(AppConfig):
    name = "access_app"
    verbose_name = "Access"

    def ready(self) -> None:
        # drf-spectacular finds an authentication scheme only once its extension is imported.
        from access_app import schema  # noqa: F401
