from django.contrib import admin

from storage_app.models import Checkpoint, Dataset


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["job", "epoch", "kind", "size", "sha256", "val_accuracy", "created_at"]
    list_filter = ["kind"]
    search_fields = ["job__id", "sha256"]
    readonly_fields = ["job", "epoch", "kind", "file", "sha256", "size", "val_accuracy", "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "format", "num_samples", "num_classes", "size", "created_at"]
    list_filter = ["format"]
    search_fields = ["name", "owner__username", "sha256"]
    readonly_fields = [f.name for f in Dataset._meta.fields]

    def has_add_permission(self, request):
        return False  # uploaded through the API or `manage.py upload_dataset`
