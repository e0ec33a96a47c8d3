"""Input and output shapes of the projects API, and of a job's or a sweep's PATCH."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import selectors
from jobs.models import Project, ProjectMember
from jobs.projects import MAX_NOTE, ProjectField, TagsField
from tensorfleet_site.serializers import StrictSerializer


class MemberSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username", read_only=True)

    class Meta:
        model = ProjectMember
        fields = ["user", "role", "created_at"]
        read_only_fields = fields


class ProjectSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="project-detail")
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    role = serializers.SerializerMethodField(help_text="yours: owner, write or read")
    members = MemberSerializer(many=True, read_only=True)
    counts = serializers.SerializerMethodField(help_text="the project's jobs and sweeps")

    class Meta:
        model = Project
        fields = ["id", "url", "name", "description", "owner", "role", "members", "counts", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=["owner", "write", "read"]))
    def get_role(self, project: Project) -> str | None:
        request = self.context.get("request")
        return selectors.project_role(request.user, project) if request else None

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_counts(self, project: Project) -> dict:
        return {"jobs": project.jobs.count(), "sweeps": project.sweeps.count()}


class ProjectCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, help_text="unique among your projects")
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class ProjectUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give name and/or description.")
        return attrs


class MemberSetSerializer(StrictSerializer):
    user = serializers.CharField(max_length=150, help_text="the user's username")
    role = serializers.ChoiceField(choices=ProjectMember.Role.choices, default=ProjectMember.Role.READ)

    def validate_user(self, value: str):
        user = get_user_model().objects.filter(username=value.strip(), is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"No user named {value.strip()!r}.")
        return user


class OrganiseSerializer(StrictSerializer):
    """PATCH of a job or a sweep: its project, tags and note only (each optional)."""

    project = ProjectField(required=False, allow_null=True)
    tags = TagsField(required=False)
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True)

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            fixed = sorted(set(data.keys()) - set(self.fields))
            if fixed and all(field in self.context.get("spec_fields", ()) for field in fixed):
                raise serializers.ValidationError(
                    {field: ["Fixed at submission: only project, tags and note change."] for field in fixed}
                )
        return super().to_internal_value(data)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give project, tags and/or note: nothing else changes.")
        return attrs


class TagCountSerializer(serializers.Serializer):
    name = serializers.CharField()
    jobs = serializers.IntegerField(help_text="jobs you see with this tag")
    sweeps = serializers.IntegerField(help_text="sweeps you see with this tag")
