from django.contrib import admin

from storage_app.models import Checkpoint


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["job", "epoch", "kind", "size", "sha256", "val_accuracy", "created_at"]
    list_filter = ["kind"]
    search_fields = ["job__id", "sha256"]
    readonly_fields = ["job", "epoch", "kind", "file", "sha256", "size", "val_accuracy", "created_at"]

    def has_add_permission(self, request):
        return False
