"""The OpenAPI schema documents the error answers each operation can give."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_the_schema_is_valid_openapi(schema):
    validate_schema(schema)


def test_every_api_operation_documents_its_error_answers(schema):
    missing = []
    for path, method, op in operations(schema):
        if path.startswith(("/api/v1/health", "/api/v1/ready")):
            continue
        want = {"401", "429"}
        if method in ("post", "put", "patch"):
            want |= {"400", "413"}
        if "{" in path:
            want.add("404")
        lacking = want - set(op["responses"])
        if lacking:
            missing.append(f"{method.upper()} {path}: {sorted(lacking)}")
    assert not missing, missing


def test_state_conflicts_and_quotas_are_described(schema):
    paths = schema["paths"]
    assert "409" in paths["/api/v1/jobs/{id}/cancel/"]["post"]["responses"]
    assert "409" in paths["/api/v1/jobs/{id}/resume/"]["post"]["responses"]
    assert "409" in paths["/api/v1/jobs/{id}/"]["delete"]["responses"]
    too_many = paths["/api/v1/jobs/"]["post"]["responses"]["429"]
    assert "quota" in too_many["description"]
    assert too_many["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/QuotaError"}
    assert "413" in paths["/api/v1/datasets/"]["post"]["responses"]
