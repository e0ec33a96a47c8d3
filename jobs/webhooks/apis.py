"""The webhooks API under /api/v1/webhooks: endpoints, their deliveries with every
attempt, and a redeliver action. Owner-only (another user's endpoint is a 404)."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs.webhooks import selectors, services, tasks
from jobs.webhooks.models import WebhookEndpoint
from jobs.webhooks.serializers import (
    DeliverySerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
    EndpointWriteSerializer,
)

DELIVERY = OpenApiParameter("delivery_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your webhook endpoints. Each delivery is a POST with a JSON body and the headers
    X-TensorFleet-Event, X-TensorFleet-Delivery and X-TensorFleet-Signature."""

    serializer_class = EndpointSerializer
    filterset_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return WebhookEndpoint.objects.none()
        return selectors.endpoints_visible_to(self.request.user)

    @extend_schema(request=EndpointWriteSerializer, responses={201: EndpointSerializer})
    def create(self, request):
        data = EndpointWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(owner=request.user, **data.validated_data)
        return Response(EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=EndpointUpdateSerializer, responses={200: EndpointSerializer})
    def partial_update(self, request, pk=None):
        endpoint = self.get_object()
        data = EndpointUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The endpoint's deliveries, newest first, each with its attempts."""
        page = self.paginate_queryset(selectors.deliveries_of(self.get_object()))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    def _delivery(self, delivery_id):
        try:
            delivery_id = uuid.UUID(str(delivery_id))
        except ValueError:
            raise Http404("no such delivery") from None
        delivery = selectors.delivery_of(self.get_object(), delivery_id)
        if delivery is None:
            raise Http404("no such delivery")
        return delivery

    @extend_schema(parameters=[DELIVERY], responses=DeliverySerializer)
    @action(
        detail=True,
        methods=["get"],
        url_path=r"deliveries/(?P<delivery_id>[0-9a-fA-F-]+)",
        url_name="delivery",
        pagination_class=None,
    )
    def delivery(self, request, pk=None, delivery_id=None):
        return Response(DeliverySerializer(self._delivery(delivery_id)).data)

    @extend_schema(parameters=[DELIVERY], request=None, responses={202: DeliverySerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery_id>[0-9a-fA-F-]+)/redeliver",
        url_name="redeliver",
        pagination_class=None,
    )
    def redeliver(self, request, pk=None, delivery_id=None):
        """Send a delivery's event and data again, as a new delivery."""
        original = self._delivery(delivery_id)
        with transaction.atomic():
            again = services.delivery_redeliver(delivery=original)
            tasks.deliveries_send([again])
        again.refresh_from_db()
        return Response(DeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)
