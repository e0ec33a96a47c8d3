from django.contrib import admin

from tensorfleet_site.quotas.models import Quota


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ("user", "active_jobs", "shards_in_flight", "sweep_trials", "stored_bytes", "checkpoints_per_job")
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)
