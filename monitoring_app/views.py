"""Health, readiness, Prometheus metrics and the overview. Thin: the work is in
health.py, collectors.py and overview.py."""

from __future__ import annotations

import hmac
import os

import prometheus_client
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from prometheus_client import multiprocess
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring_app.collectors import fleet_registry
from monitoring_app.health import readiness
from monitoring_app.overview import overview_for
from monitoring_app.serializers import OverviewSerializer


@require_GET
@never_cache
def health(request):
    """Liveness: the process answers (checks nothing else, so a database outage does not
    get every API pod restarted)."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def ready(request):
    """Readiness: 200 when the database, the broker and storage all answer, else 503
    naming the ones that did not."""
    checks = readiness()
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)


def _authorized(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True  # no token configured: /metrics is open (scraped over a private network)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
@never_cache
def metrics(request):
    """Prometheus exposition: django-prometheus (requests, latencies, database) plus the
    fleet's gauges. Guarded by ``Authorization: Bearer <METRICS_TOKEN>`` when it is set."""
    if not _authorized(request):
        response = HttpResponse("a valid bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # gunicorn with several workers and prometheus-client's multiprocess mode: the sum
        # over the processes (the prometheus-client recipe), as django-prometheus does.
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    body = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(fleet_registry)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)


class OverviewView(APIView):
    """The dashboard's numbers: jobs by status, workers online and their queues, and the
    last hour's shard tasks. Staff see the whole fleet; others their own jobs."""

    @extend_schema(responses=OverviewSerializer)
    def get(self, request):
        return Response(OverviewSerializer(overview_for(user=request.user)).data)
