"""Input and output shapes of the schedules API."""

from __future__ import annotations

from celery.schedules import crontab
from django.utils import timezone
from rest_framework import serializers

from jobs.registry.services import alias_name_error, model_name_error
from jobs.schedules.cron import CronInvalid, cron_fields
from jobs.schedules.models import Schedule, ScheduleRun
from jobs.schedules.services import spec_validate
from jobs.specs import SpecInvalid
from tensorfleet_site.serializers import StrictSerializer


class PromotionSerializer(StrictSerializer):
    model = serializers.CharField(max_length=100, help_text="a registered model's name (created on first promotion)")
    alias = serializers.CharField(max_length=64, help_text="the alias moved to a better run's version, e.g. champion")
    metric = serializers.ChoiceField(choices=Schedule.Metric.values, default=Schedule.Metric.VAL_ACCURACY)

    def validate_model(self, value: str) -> str:
        problem = model_name_error(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_alias(self, value: str) -> str:
        problem = alias_name_error(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class ScheduleWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    cron = serializers.CharField(max_length=200, help_text="minute hour day-of-month month day-of-week (UTC)")
    spec = serializers.DictField(help_text="a job spec as POST /api/v1/jobs takes it; the dataset by name")
    enabled = serializers.BooleanField(default=True)
    promotion = PromotionSerializer(required=False, allow_null=True, default=None)

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("A schedule needs a name.")
        owner = self.context["owner"]
        others = Schedule.objects.filter(owner=owner, name=value)
        if self.context.get("instance") is not None:
            others = others.exclude(id=self.context["instance"].id)
        if others.exists():
            raise serializers.ValidationError(f"You already have a schedule named {value!r}.")
        return value

    def validate_cron(self, value: str) -> str:
        try:
            cron_fields(value)
        except CronInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None
        return " ".join(value.split())

    def validate_spec(self, value: dict) -> dict:
        try:
            spec_validate(owner=self.context["owner"], spec=value)
        except SpecInvalid as exc:
            raise serializers.ValidationError(exc.errors) from None
        return value

    def to_fields(self) -> dict:
        """The model's fields from the validated input (a PATCH: those given)."""
        data = dict(self.validated_data)
        if "promotion" in data:
            rule = data.pop("promotion") or {}
            data["promote_model"] = rule.get("model", "")
            data["promote_alias"] = rule.get("alias", "")
            data["metric"] = rule.get("metric", Schedule.Metric.VAL_ACCURACY)
        return data


class ScheduleUpdateSerializer(ScheduleWriteSerializer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)


class RunSerializer(serializers.ModelSerializer):
    job = serializers.UUIDField(source="job_uuid", read_only=True, allow_null=True)

    class Meta:
        model = ScheduleRun
        fields = [
            "number",
            "trigger",
            "status",
            "job",
            "dataset_version",
            "metric_value",
            "compared_to",
            "previous_version",
            "promoted",
            "version",
            "detail",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class ScheduleSerializer(serializers.ModelSerializer):
    promotion = serializers.SerializerMethodField()
    next_run_at = serializers.SerializerMethodField(help_text="when beat sends the next run (UTC)")

    class Meta:
        model = Schedule
        fields = [
            "id",
            "name",
            "cron",
            "enabled",
            "spec",
            "promotion",
            "last_run_at",
            "next_run_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_promotion(self, schedule: Schedule) -> dict | None:
        if not schedule.promotes:
            return None
        return {"model": schedule.promote_model, "alias": schedule.promote_alias, "metric": schedule.metric}

    def get_next_run_at(self, schedule: Schedule) -> str | None:
        if not schedule.enabled:
            return None
        now = timezone.now()
        remaining = crontab(**cron_fields(schedule.cron)).remaining_estimate(now)
        return (now + remaining).replace(second=0, microsecond=0).isoformat()
