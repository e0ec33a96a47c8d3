"""Admin pages of the registry: models with their versions and aliases. Versions are
immutable (read-only here); deletes go through the services' rules."""

from __future__ import annotations

from django.contrib import admin, messages

from jobs.registry import services
from jobs.registry.models import ModelAlias, ModelVersion, RegisteredModel


class VersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    can_delete = False
    fields = ("version", "source", "checkpoint_epoch", "metrics", "job_uuid", "dataset_name", "dataset_version")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class AliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 0
    fields = ("name", "version", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "last_version", "updated_at"]
    list_filter = ["owner"]
    search_fields = ["name", "description", "owner__username"]
    readonly_fields = ["owner", "name", "last_version", "created_at", "updated_at"]
    fields = ["owner", "name", "description", "last_version", "created_at", "updated_at"]
    inlines = [AliasInline, VersionInline]

    def has_add_permission(self, request):
        return False  # `manage.py register_model` or the API


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model", "version", "source", "checkpoint_epoch", "val_accuracy", "created_at"]
    list_filter = ["source", "model__owner"]
    search_fields = ["model__name", "job_uuid", "checkpoint_sha256"]
    actions = ["delete_versions"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the action below keeps the alias rule

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="val_accuracy")
    def val_accuracy(self, obj: ModelVersion):
        return obj.metrics.get("val_accuracy")

    @admin.action(description="Delete the selected versions (not those an alias points at)")
    def delete_versions(self, request, queryset):
        deleted = 0
        for version in queryset:
            try:
                services.version_delete(version=version)
                deleted += 1
            except services.RegistryError as exc:
                self.message_user(request, f"{version}: {exc}", messages.WARNING)
        self.message_user(request, f"deleted {deleted} version(s)")
