from django.contrib import admin, messages

from storage_app.models import Checkpoint, Dataset, Weights
from storage_app.weights import WeightsInUse, weights_delete


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


@admin.register(Weights)
class WeightsAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "size", "sha256", "created_at"]
    search_fields = ["name", "owner__username", "sha256"]
    readonly_fields = [f.name for f in Weights._meta.fields]

    def has_add_permission(self, request):
        return False  # uploaded through the API

    def delete_model(self, request, obj):
        """Through the service: refused while a queued or running job starts from them,
        and the stored object goes when no other record shares it."""
        try:
            weights_delete(weights=obj)
        except WeightsInUse as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request, queryset):
        for weights in queryset:
            self.delete_model(request, weights)
