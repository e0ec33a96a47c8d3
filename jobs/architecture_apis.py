"""GET /api/v1/architectures: the models the workers can build, as they published them
(``jobs.published_models``): each with the arguments its builder takes (the schema of
a job's ``model_args``), the input it takes and the queues whose workers have it."""

from __future__ import annotations

from django.http import Http404
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from jobs.published_models import architectures


class ArchitectureSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="what a job's model_type names")
    input_kind = serializers.ChoiceField(choices=["images", "tabular", "any"])
    arguments = serializers.DictField(
        child=serializers.DictField(),
        help_text="the model_args a job may give, by name: {type: int | float | bool | str | list[...], default, "
        "required}, with nullable: true when null is allowed and choices: [...] when only those values are",
    )
    description = serializers.CharField()
    entry_point = serializers.CharField(source="source", help_text="the package, its version and the builder")
    queues = serializers.ListField(child=serializers.CharField(), help_text="queues whose workers can build it")


class ArchitectureViewSet(viewsets.ViewSet):
    """Models a job can name, and where they can be trained. Workers publish them when they start."""

    serializer_class = ArchitectureSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def list(self, request):
        rows = architectures()
        return Response({"count": len(rows), "results": ArchitectureSerializer(rows, many=True).data})

    def retrieve(self, request, name=None):
        for row in architectures():
            if row["name"] == name:
                return Response(ArchitectureSerializer(row).data)
        raise Http404(f"No worker publishes a model named {name!r}.")
