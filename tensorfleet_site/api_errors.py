"""DRF's exception handler, plus the platform's own errors: a quota hit is a 429 saying
which quota and the current use (a 400 when the request alone could never fit)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tensorfleet_site.quotas.limits import QuotaExceeded


def exception_handler(exc, context):
    if isinstance(exc, QuotaExceeded):
        field = exc.field or "detail"
        code = status.HTTP_400_BAD_REQUEST if exc.never_fits else status.HTTP_429_TOO_MANY_REQUESTS
        return Response({field: [str(exc)], "quota": exc.as_dict()}, status=code)
    return drf_exception_handler(exc, context)
