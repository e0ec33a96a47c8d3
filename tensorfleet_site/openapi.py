"""The error answers every operation can give, written into the OpenAPI schema once
(a drf-spectacular postprocessing hook) instead of on each view.

* 400: a field-level message per bad input (a body that breaks a rule, a query
  parameter no filter reads, an over-quota request that could never fit);
* 401: no or bad credentials; 404: an id that is not yours or does not exist;
* 409: the resource's state forbids it (declared by the views that can answer it);
* 413: a request body over the limit;
* 429: too many bad credentials from one address, or a quota reached.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "Field name (or non_field_errors, detail, quota) -> messages.",
    "additionalProperties": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]},
    "example": {"num_workers": ["Ensure this value is less than or equal to 64."]},
}
QUOTA_SCHEMA = {
    "type": "object",
    "properties": {
        "quota": {
            "type": "object",
            "properties": {n: {"type": "integer"} for n in ("limit", "used", "asked")} | {"quota": {"type": "string"}},
        },
        "detail": {"type": "string"},
    },
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
DESCRIPTIONS = {
    "400": "Invalid input: a message per field (an unknown query parameter, a rule the body breaks, "
    "or a request that alone exceeds a quota).",
    "401": "No credentials, or bad ones.",
    "404": "No such resource among yours.",
    "413": "The request body is over the size limit.",
    "429": "Too many bad credentials from this address, or a quota reached: the body names the quota, "
    "its limit and the current use.",
}
WRITES = {"post", "put", "patch"}
OPEN_PATHS = ("/api/v1/health", "/api/v1/ready")  # probes: no authentication, no input


def _response(code: str) -> dict:
    schema = {"$ref": "#/components/schemas/QuotaError"} if code == "429" else {"$ref": "#/components/schemas/Error"}
    return {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": schema}}}


def add_error_responses(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    schemas.setdefault("QuotaError", QUOTA_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        if path.startswith(OPEN_PATHS):
            continue
        for method, operation in operations.items():
            codes = ["401", "429"]
            if method in WRITES or method == "get":
                codes.append("400")
            if "{" in path:
                codes.append("404")
            if method in WRITES:
                codes.append("413")
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(code, _response(code))
    return result
