from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from jobs.models import ACTIVE_STATUSES, EpochMetric, Job, Sweep, Task
from jobs.services import lifecycle, sweeps


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    can_delete = False
    fields = (
        "epoch",
        "round",
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
    actions = ["cancel_jobs", "delete_selected"]

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
            except (lifecycle.JobNotActive, lifecycle.JobGone):
                pass
        self.message_user(request, f"{cancelled} job(s) cancelled.", messages.SUCCESS)

    # Deleting goes through lifecycle.job_delete, as the API's does: an active job is
    # refused (cancel it first), and a deleted job's checkpoints, optimiser states and
    # shard files go from storage with its rows.

    def delete_view(self, request, object_id, extra_context=None):
        job = self.get_object(request, object_id)  # None for an unknown or malformed id
        if job is not None and job.is_active:
            self.message_user(request, f"Job is {job.status}; cancel it first.", messages.ERROR)
            return redirect("admin:jobs_job_change", object_id)
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        try:
            lifecycle.job_delete(job=obj)
        except lifecycle.JobNotFinished as exc:  # resumed since the page was shown
            raise PermissionDenied(str(exc)) from None
        except lifecycle.JobGone:
            pass  # deleted meanwhile: what was asked is done

    def delete_queryset(self, request, queryset):
        refused = []
        for job in queryset:
            try:
                lifecycle.job_delete(job=job)
            except lifecycle.JobNotFinished:
                refused.append(str(job.id))
            except lifecycle.JobGone:
                pass
        if refused:
            self.message_user(request, f"Not deleted, still active: {', '.join(refused)}.", messages.WARNING)

    @admin.action(permissions=["delete"], description="Delete selected jobs (with their files in storage)")
    def delete_selected(self, request, queryset):
        """Django's own action (its confirmation page, then ``delete_queryset``), after
        refusing a selection that holds a queued or running job, as the API refuses one."""
        active = queryset.filter(status__in=ACTIVE_STATUSES).count()
        if active:
            self.message_user(
                request, f"{active} selected job(s) still queued or running; cancel them first.", messages.ERROR
            )
            return None
        return django_delete_selected(self, request, queryset)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["job", "epoch", "round", "shard", "status", "attempts", "worker", "duration_s", "finished_at"]
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
