"""What can go wrong talking to a TensorFleet server, each as one readable line.

``TensorFleetError`` is the base. A 4xx answer is a ``ClientError`` carrying the
server's field messages (``errors``: field -> messages); a 429 for a quota is a
``QuotaExceeded`` carrying the quota (name, limit, used, asked); a 5xx is a
``ServerError``; no answer at all (refused, timed out) is a ``TransportError``.
"""

from __future__ import annotations

from typing import Any

import httpx

# Keys of an error body that are data, not messages: kept on the exception, left out of its line.
DATA_KEYS = ("quota", "matches")
MAX_BODY_CHARS = 200


class TensorFleetError(Exception):
    """Anything the client could not do; ``str()`` is one line meant for a person."""


class TransportError(TensorFleetError):
    """No answer: the server is not reachable, or did not answer within the timeout."""


class ChecksumMismatch(TensorFleetError):
    """A download's bytes do not hash to the sha256 the server announced."""


class JobFailed(TensorFleetError):
    """``Client.wait(..., check=True)`` on a job or sweep that did not succeed."""

    def __init__(self, message: str, job: dict[str, Any]):
        super().__init__(message)
        self.job = job


class ServerError(TensorFleetError):
    """A 5xx answer."""

    def __init__(self, message: str, *, status: int, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class ClientError(TensorFleetError):
    """A 4xx answer: the request was refused. ``errors`` maps each field (or ``detail``,
    ``non_field_errors``) to the server's messages; ``body`` is the answer as sent."""

    def __init__(self, message: str, *, status: int, errors: dict[str, list[str]], body: Any = None):
        super().__init__(message)
        self.status = status
        self.errors = errors
        self.body = body


class AuthenticationError(ClientError):
    """401 or 403: no token, a bad or revoked one, or no permission."""


class NotFound(ClientError):
    """404: no such job, sweep, dataset or checkpoint among yours."""


class Conflict(ClientError):
    """409: the resource's state forbids it (cancel an ended job, delete a running one)."""


class QuotaExceeded(ClientError):
    """429: a quota is reached (``quota``: its name, limit, current use and what was asked),
    or too many bad tokens from this address (``quota`` is None). ``retry_after`` is the
    server's Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, *, quota: dict[str, Any] | None, retry_after: float | None, **kw: Any):
        super().__init__(message, **kw)
        self.quota = quota
        self.retry_after = retry_after


class FeatureUnavailable(ClientError):
    """The server has no such route: it predates the feature (e.g. the model registry)."""


def flatten_errors(body: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's error body as ``{"field.sub": [messages]}``: nested serializers become dotted
    names, a bare string or list becomes ``detail``."""
    if isinstance(body, dict):
        flat: dict[str, list[str]] = {}
        for key, value in body.items():
            name = f"{prefix}{key}"
            if not prefix and key in DATA_KEYS:
                continue
            if isinstance(value, dict):
                flat.update(flatten_errors(value, f"{name}."))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        flat.update(flatten_errors(item, f"{name}[{i}]."))
                    else:
                        flat.setdefault(name, []).append(str(item))
            else:
                flat[name] = [str(value)]
        return flat
    if isinstance(body, list):
        return {prefix.rstrip(".") or "detail": [str(item) for item in body]}
    if body is None or body == "":
        return {}
    return {prefix.rstrip(".") or "detail": [str(body)]}


def errors_line(errors: dict[str, list[str]]) -> str:
    """``field: message; other: message`` (``detail`` and ``non_field_errors`` unprefixed)."""
    parts = []
    for field, messages in errors.items():
        text = " ".join(messages)
        parts.append(text if field in ("detail", "non_field_errors") else f"{field}: {text}")
    return "; ".join(parts)


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def error_for(response: httpx.Response) -> TensorFleetError:
    """The exception for an answer of 400 or more."""
    status = response.status_code
    request = response.request
    where = f"HTTP {status} on {request.method} {request.url.path}"
    body = _body(response)
    errors = flatten_errors(body) if body is not None else {}
    if errors:
        message = f"{errors_line(errors)} ({where})"
    else:
        text = " ".join(response.text.split())[:MAX_BODY_CHARS] if body is None else ""
        reason = response.reason_phrase or "error"
        message = f"{where}: {reason}" + (f" ({text})" if text and not text.startswith("<") else "")
    if status >= 500:
        return ServerError(message, status=status, body=body)
    if status == 404 and body is None:  # Django's own page: no route, not "no such object"
        return FeatureUnavailable(
            f"the server has no {request.method} {request.url.path} ({where}); it may be an older TensorFleet",
            status=status,
            errors=errors,
            body=body,
        )
    kind = {401: AuthenticationError, 403: AuthenticationError, 404: NotFound, 409: Conflict}.get(status, ClientError)
    if status == 429:
        quota = body.get("quota") if isinstance(body, dict) else None
        return QuotaExceeded(
            message,
            quota=quota if isinstance(quota, dict) else None,
            retry_after=_retry_after(response),
            status=status,
            errors=errors,
            body=body,
        )
    return kind(message, status=status, errors=errors, body=body)
