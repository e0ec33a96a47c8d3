"""Output serializers of the monitoring API (it takes no input)."""

from __future__ import annotations

from rest_framework import serializers


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())


class JobsCardSerializer(serializers.Serializer):
    total = serializers.IntegerField(source="jobs_total")
    by_status = serializers.DictField(child=serializers.IntegerField(), source="jobs_by_status")


class WorkersCardSerializer(serializers.Serializer):
    online = serializers.IntegerField(source="workers_online", allow_null=True, help_text="null: broker unreachable")
    by_queue = serializers.DictField(child=serializers.IntegerField(), source="workers_by_queue")
    workers = WorkerSerializer(many=True, allow_null=True)


class TasksCardSerializer(serializers.Serializer):
    window_s = serializers.IntegerField(help_text="the window the numbers cover: the last hour")
    completed = serializers.IntegerField(source="tasks_completed", help_text="shard tasks that succeeded")
    samples_trained = serializers.IntegerField()
    mean_duration_s = serializers.FloatField(source="mean_task_duration_s", allow_null=True)


class OverviewSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["all", "own"], help_text="all for staff, else the user's own jobs")
    jobs = JobsCardSerializer(source="*")
    workers = WorkersCardSerializer(source="*")
    tasks = TasksCardSerializer(source="*")
    generated_at = serializers.DateTimeField()
