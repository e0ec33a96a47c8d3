"""Webhooks: signed deliveries to a real HTTP server on loopback, retries with every
attempt logged, redelivery, the address rules, and owner-only endpoints."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from jobs import signals
from jobs.models import Status, Sweep
from jobs.services import lifecycle, sweeps
from jobs.webhooks.addresses import address_refusal
from jobs.webhooks.models import WebhookDelivery
from tensorfleet_site.access.services import token_create
from tests.factories import JobFactory
from tests.registry_helpers import finished_job
from tests.webhook_receiver import start_receiver

SECRET = "s3cret-for-the-hook-tests"
SPEC = dict(
    model_type="mlp",
    dataset="iris",
    num_workers=2,
    epochs=3,
    batch_size=16,
    learning_rate=0.01,
    optimizer="adam",
    seed=3,
    queue="cpu",
    threads=1,
)


@pytest.fixture
def loopback_allowed(settings):
    settings.TENSORFLEET_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def eager_celery(eager_celery):
    """In-process Celery where a retry runs again at once: Celery re-applies an eager
    task that retries only when eager errors do not propagate."""
    eager_celery.conf.task_eager_propagates = False
    yield eager_celery
    eager_celery.conf.task_eager_propagates = True


@pytest.fixture
def receiver():
    server = start_receiver()
    yield server
    server.server.shutdown()


def hook(api, url: str, events: list[str]) -> dict:
    response = api.post("/api/v1/webhooks", {"url": url, "events": events, "secret": SECRET}, format="json")
    assert response.status_code == 201, response.data
    assert "secret" not in response.data
    return response.data


@pytest.mark.django_db(transaction=True)
def test_receiver_gets_job_succeeded_and_alias_moved_signed(
    user, api, receiver, loopback_allowed, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    endpoint = hook(api, receiver.url, ["job.succeeded", "model.alias_moved"])
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=SPEC)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    api.post("/api/v1/models", {"name": "iris"}, format="json")
    api.post("/api/v1/models/iris/versions", {"job": str(job.id)}, format="json")  # not subscribed
    api.post("/api/v1/models/iris/versions", {"job": str(job.id), "checkpoint": "final"}, format="json")
    api.put("/api/v1/models/iris/aliases/champion", {"version": 1}, format="json")
    api.put("/api/v1/models/iris/aliases/champion", {"version": 2}, format="json")

    got = receiver.wait_for(3)
    assert [r.event for r in got] == ["job.succeeded", "model.alias_moved", "model.alias_moved"]
    assert all(r.signed_with(SECRET) for r in got)
    assert not got[0].signed_with(SECRET + "x")
    succeeded = got[0].document
    assert succeeded["event"] == "job.succeeded" and succeeded["delivery"] == got[0].headers["X-TensorFleet-Delivery"]
    assert succeeded["data"]["job"]["id"] == str(job.id)
    assert succeeded["data"]["job"]["best_val_accuracy"] == pytest.approx(job.best_val_accuracy)
    moved = got[2].document["data"]
    assert moved == {"model": "iris", "alias": "champion", "version": 2, "previous_version": 1}
    assert got[0].headers["Content-Type"] == "application/json"

    listed = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").data
    assert listed["count"] == 3
    assert {d["status"] for d in listed["results"]} == {"succeeded"}
    assert all(d["attempts"][0]["status_code"] == 200 for d in listed["results"])


def _alias_event(api, user, name="m"):
    job = finished_job(user)
    api.post("/api/v1/models", {"name": name}, format="json")
    api.post(f"/api/v1/models/{name}/versions", {"job": str(job.id)}, format="json")
    api.put(f"/api/v1/models/{name}/aliases/champion", {"version": 1}, format="json")


@pytest.mark.django_db(transaction=True)
def test_a_5xx_is_retried_and_every_attempt_shows_in_the_api(
    user, api, loopback_allowed, eager_celery, local_storage, settings
):
    flaky = start_receiver(answers=[500, 503, 200])
    try:
        endpoint = hook(api, flaky.url, ["model.alias_moved"])
        _alias_event(api, user)
        assert len(flaky.wait_for(3)) == 3
        delivery = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").data["results"][0]
        assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 3
        attempts = delivery["attempts"]
        assert [a["status_code"] for a in attempts] == [500, 503, 200]
        assert [a["will_retry"] for a in attempts] == [True, True, False]
        assert attempts[0]["response_excerpt"] == '{"status": 500}' and attempts[0]["address"] == "127.0.0.1"
        assert all(a["duration_ms"] >= 0 for a in attempts)
        ids = {r.headers["X-TensorFleet-Delivery"] for r in flaky.received}
        assert ids == {delivery["id"]}  # the same delivery, tried again
    finally:
        flaky.server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_keeps_failing_is_given_up_on_then_redelivered(
    user, api, loopback_allowed, eager_celery, local_storage, settings
):
    down = start_receiver(answers=[500])
    try:
        endpoint = hook(api, down.url, ["model.alias_moved"])
        _alias_event(api, user)
        limit = settings.TENSORFLEET_WEBHOOK_MAX_ATTEMPTS
        assert len(down.wait_for(limit)) == limit
        delivery = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").data["results"][0]
        assert delivery["status"] == "failed" and delivery["attempt_count"] == limit
        assert [a["will_retry"] for a in delivery["attempts"]] == [True] * (limit - 1) + [False]

        down.answers = [200]
        again = api.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver")
        assert again.status_code == 202
        assert str(again.data["redelivery_of"]) == delivery["id"] and again.data["status"] == "succeeded"
        last = down.wait_for(limit + 1)[-1]
        assert last.document["redelivery_of"] == delivery["id"]
        assert last.document["data"] == down.received[0].document["data"]
    finally:
        down.server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_no_answer_is_retried_too(user, api, loopback_allowed, eager_celery, local_storage):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = hook(api, f"http://127.0.0.1:{port}/hook", ["*"])
    _alias_event(api, user)
    deliveries = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").data["results"]
    assert {d["event"] for d in deliveries} == {"model.version_created", "model.alias_moved"}
    for delivery in deliveries:
        assert delivery["status"] == "failed"
        assert all(a["status_code"] is None and "Connection" in a["error"] for a in delivery["attempts"])


@pytest.mark.parametrize(
    "url,reason",
    [
        ("http://10.0.0.7/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:192.168.1.1]/hook", "private"),
        ("http://0.0.0.0/hook", "reserved"),
        ("http://240.0.0.1/hook", "reserved"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("http://user:pw@example.com/hook", "user name"),
        ("not a url", "http:// or https://"),
        ("http://no-such-host.invalid/hook", "cannot resolve"),
    ],
)
@pytest.mark.django_db
def test_urls_that_reach_inside_are_refused_at_registration(api, url, reason):
    response = api.post("/api/v1/webhooks", {"url": url, "events": ["job.failed"], "secret": SECRET}, format="json")
    assert response.status_code == 400
    assert reason in response.data["url"][0]


def test_public_addresses_pass_and_the_rest_do_not():
    refused = {a: address_refusal(ipaddress.ip_address(a)) for a in ("8.8.8.8", "2606:4700::1111", "100.64.0.1")}
    assert refused["8.8.8.8"] is None and refused["2606:4700::1111"] is None
    assert refused["100.64.0.1"] == "a reserved address"  # carrier-grade NAT: not the internet


@pytest.mark.django_db(transaction=True)
def test_a_name_that_rebinds_to_loopback_is_refused_at_delivery(
    user, api, receiver, eager_celery, local_storage, monkeypatch
):
    port = receiver.server.server_address[1]
    answers = {"now": "93.184.216.34"}  # public when registered...

    def fake_getaddrinfo(host, port_, *args, **kwargs):
        assert host == "hooks.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers["now"], port_))]

    monkeypatch.setattr("jobs.webhooks.addresses.socket.getaddrinfo", fake_getaddrinfo)
    endpoint = hook(api, f"http://hooks.example.com:{port}/hook", ["model.alias_moved"])
    answers["now"] = "127.0.0.1"  # ...loopback when delivered
    _alias_event(api, user)
    delivery = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").data["results"][0]
    assert delivery["status"] == "failed" and delivery["attempt_count"] == 1  # not retried
    assert "loopback" in delivery["attempts"][0]["error"]
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_job_failed_cancelled_and_sweep_finished_events(user, api, receiver, loopback_allowed, eager_celery):
    hook(api, receiver.url, ["job.failed", "job.cancelled", "sweep.finished"])
    failing = JobFactory(owner=user, status=Status.RUNNING)
    lifecycle.job_fail(job_id=failing.id, reason="boom")
    cancelled = JobFactory(owner=user, status=Status.QUEUED)
    lifecycle.job_cancel(job=cancelled)
    sweep = Sweep.objects.create(owner=user, space={}, max_trials=1, max_concurrent=1)
    with transaction.atomic():
        sweeps._sweep_finish(sweep)
    got = receiver.wait_for(3)
    assert [r.event for r in got] == ["job.failed", "job.cancelled", "sweep.finished"]
    assert got[0].document["data"]["job"]["error"] == "boom"
    assert got[2].document["data"]["sweep"]["id"] == str(sweep.id)
    signals.job_ended.send(sender=None, job_id=JobFactory(owner=user, status=Status.RUNNING).id)  # not ended: nothing
    assert WebhookDelivery.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_endpoints_are_their_owners_and_the_secret_never_comes_back(
    user, other_user, api, receiver, loopback_allowed, eager_celery, local_storage
):
    endpoint = hook(api, receiver.url, ["model.alias_moved"])
    _alias_event(api, user)
    delivery = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").data["results"][0]
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=other_user)}")
    base = f"/api/v1/webhooks/{endpoint['id']}"
    for path in (base, f"{base}/deliveries", f"{base}/deliveries/{delivery['id']}"):
        assert stranger.get(path).status_code == 404, path
        assert SECRET not in str(api.get(path).data)
    assert stranger.post(f"{base}/deliveries/{delivery['id']}/redeliver").status_code == 404
    assert stranger.patch(base, {"active": False}, format="json").status_code == 404
    assert stranger.delete(base).status_code == 404
    assert stranger.get("/api/v1/webhooks").data["count"] == 0
    # Updates are checked as creation is; the secret can be replaced, not read.
    assert api.patch(base, {"url": "http://10.1.2.3/x"}, format="json").status_code == 400
    assert api.patch(base, {"secret": "short"}, format="json").status_code == 400
    changed = api.patch(base, {"active": False, "secret": "another-secret-0123456789"}, format="json")
    assert changed.status_code == 200 and changed.data["active"] is False and "secret" not in changed.data
    assert api.delete(base).status_code == 204
