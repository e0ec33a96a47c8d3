"""Admin pages of the schedules: a schedule with its runs. Changes go through the
services, so the beat entry (django-celery-beat's PeriodicTask, in its own admin pages
too) follows."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from jobs.schedules import services
from jobs.schedules.cron import CronInvalid, cron_fields
from jobs.schedules.models import Schedule, ScheduleRun


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ["cron", "enabled"]

    def clean_cron(self):
        try:
            cron_fields(self.cleaned_data["cron"])
        except CronInvalid as exc:
            raise forms.ValidationError(str(exc)) from None
        return " ".join(self.cleaned_data["cron"].split())


class RunInline(admin.TabularInline):
    model = ScheduleRun
    extra = 0
    can_delete = False
    fields = (
        "number",
        "trigger",
        "status",
        "job_uuid",
        "dataset_version",
        "metric_value",
        "compared_to",
        "promoted",
        "version",
        "detail",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = ["name", "owner", "cron", "enabled", "promote_model", "promote_alias", "last_run_at"]
    list_filter = ["enabled", "owner"]
    search_fields = ["name", "owner__username"]
    fields = ["owner", "name", "cron", "enabled", "spec", "metric", "promote_model", "promote_alias", "periodic_task"]
    readonly_fields = ["owner", "name", "spec", "metric", "promote_model", "promote_alias", "periodic_task"]
    inlines = [RunInline]

    def has_add_permission(self, request):
        return False  # the API checks the spec against the owner's datasets

    def save_model(self, request, obj, form, change):
        services.schedule_update(schedule=obj, cron=obj.cron, enabled=obj.enabled)
