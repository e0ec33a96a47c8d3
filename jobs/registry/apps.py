from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "jobs.registry"
    label = "registry"
    verbose_name = "Model registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # However a version's row goes (its API, its model's deletion, its owner's, the
        # admin), the stored file goes with the last version that holds it.
        from django.db.models.signals import post_delete

        from jobs.registry import services
        from jobs.registry.models import ModelVersion

        post_delete.connect(services.version_rows_deleted, sender=ModelVersion, dispatch_uid="registry.version_deleted")
