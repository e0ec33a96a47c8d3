"""Admin pages of the webhooks: endpoints (the secret neither shown nor edited here),
deliveries with their attempts, and a redeliver action."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from jobs.webhooks import services, tasks
from jobs.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "owner", "events", "active", "created_at"]
    list_filter = ["active", "owner"]
    search_fields = ["url", "owner__username", "description"]
    fields = ["owner", "url", "events", "active", "description", "created_at", "updated_at"]
    readonly_fields = ["owner", "url", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False  # the API checks the URL and takes the secret


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "started_at",
        "duration_ms",
        "address",
        "status_code",
        "error",
        "response_excerpt",
        "will_retry",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "endpoint", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "event"]
    search_fields = ["id", "endpoint__url"]
    inlines = [AttemptInline]
    actions = ["redeliver"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver the selected deliveries (as new deliveries)")
    def redeliver(self, request, queryset):
        with transaction.atomic():
            made = [services.delivery_redeliver(delivery=d) for d in queryset.select_related("endpoint")]
            tasks.deliveries_send(made)
        self.message_user(request, f"{len(made)} delivery(ies) queued again")
