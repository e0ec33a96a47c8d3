from __future__ import annotations

from django.contrib import admin, messages

from jobs.models import EpochMetric, Job, Sweep, Task
from jobs.services import lifecycle, sweeps


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    can_delete = False
    fields = (
        "epoch",
        "shard",
        "status",
        "attempts",
        "worker",
        "duration_s",
        "samples",
        "train_loss",
        "error",
    )
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class EpochMetricInline(admin.TabularInline):
    model = EpochMetric
    extra = 0
    can_delete = False
    fields = ("epoch", "train_loss", "val_loss", "val_accuracy", "samples_per_s", "duration_s")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "owner",
        "status",
        "sweep",
        "trial_number",
        "progress_percent",
        "current_epoch",
        "epochs",
        "model_type",
        "dataset",
        "val_accuracy",
        "created_at",
    ]
    list_filter = ["status", "model_type", "dataset", "queue", "created_at"]
    search_fields = ["id", "name", "owner__username"]
    list_select_related = ["owner", "sweep"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [EpochMetricInline, TaskInline]
    actions = ["cancel_jobs"]

    @admin.display(description="progress")
    def progress_percent(self, job: Job) -> str:
        return f"{job.progress:.0%}"

    def has_add_permission(self, request):
        return False  # jobs are submitted through the API or `manage.py submit_job`

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        cancelled = 0
        for job in queryset:
            try:
                lifecycle.job_cancel(job=job)
                cancelled += 1
            except lifecycle.JobNotActive:
                pass
        self.message_user(request, f"{cancelled} job(s) cancelled.", messages.SUCCESS)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["job", "epoch", "shard", "status", "attempts", "worker", "duration_s", "finished_at"]
    list_filter = ["status"]
    search_fields = ["job__id", "worker"]
    readonly_fields = [f.name for f in Task._meta.fields]

    def has_add_permission(self, request):
        return False


class TrialInline(admin.TabularInline):
    model = Job
    fk_name = "sweep"
    verbose_name, verbose_name_plural = "trial", "trials"
    extra = 0
    can_delete = False
    fields = (
        "trial_number",
        "status",
        "error",
        "completed_epochs",
        "epochs",
        "learning_rate",
        "batch_size",
        "val_accuracy",
        "val_loss",
        "finished_at",
    )
    readonly_fields = fields
    ordering = ["trial_number"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "owner",
        "status",
        "search",
        "trials_started",
        "max_trials",
        "max_concurrent",
        "metric",
        "best_metric",
        "created_at",
    ]
    list_filter = ["status", "search", "created_at"]
    search_fields = ["id", "name", "owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Sweep._meta.fields]
    inlines = [TrialInline]
    actions = ["cancel_sweeps"]

    @admin.display(description="started")
    def trials_started(self, sweep: Sweep) -> int:
        return sweep.trials.count()

    def has_add_permission(self, request):
        return False  # sweeps are submitted through the API or `manage.py submit_sweep`

    @admin.action(description="Cancel selected sweeps (and their running trials)")
    def cancel_sweeps(self, request, queryset):
        cancelled = 0
        for sweep in queryset:
            try:
                sweeps.sweep_cancel(sweep=sweep)
                cancelled += 1
            except sweeps.SweepNotActive:
                pass
        self.message_user(request, f"{cancelled} sweep(s) cancelled.", messages.SUCCESS)
